"""Admin: participants' deletion requests. The list (open first) shows no reason; one request's page
shows its decrypted reason (audited each time), what must be kept and why, what will be erased, and
carries the deletion out (``privacy.erasure``) or declines it with a note (the person is told)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Optional

from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import page_arg, submit
from retreat.core.pagination import paginate
from retreat.extensions import db
from retreat.privacy import deletion, deletion_review, erasure
from retreat.privacy.models import DeletionRequest, DeletionStatus
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context

PER_PAGE = 50


class DeletionCloseForm(FlaskForm):
    # Bounded (and NUL refused) by the rule, privacy.deletion_review.close.
    note = TextAreaField("Note to the participant", validators=[Optional()],
                         render_kw={"maxlength": deletion_review.NOTE_MAX},
                         description="Sent to the participant in the email that tells them the outcome: a word when "
                                     "it is carried out, or why it is declined (required to decline). No clinical "
                                     "details.")


def _load(request_id: int) -> DeletionRequest:
    req = db.session.get(DeletionRequest, request_id) if request_id < 2**31 else None
    if req is None:
        abort(404)
    return req


@bp.get("/deletion-requests")
def deletion_requests():
    status = (request.args.get("status") or "").strip() or None
    if status is not None and status not in deletion_review.STATUSES:
        abort(400, description=f"Unknown status {status!r}.")
    page = paginate(deletion_review.list_statement(status), page=page_arg(), per_page=PER_PAGE)
    return render_template("admin/deletion_requests.html", page=page, status=status,
                           statuses=deletion_review.STATUSES, counts=deletion_review.count_by_status(),
                           query={"status": status} if status else {}, due_by=deletion_review.due_by)


def _render_detail(req: DeletionRequest, form: DeletionCloseForm, status: int = 200):
    reasons = deletion_review.read_reason(req, acting_user(), ctx=request_context(), now=now_utc())
    if status >= 400 and reasons:
        # The reason is shown on the refused form too: its read is audited, so that event stays.
        transaction.keep("the audit event of a deletion reason shown on a refused form")
    is_open = req.status == DeletionStatus.OPEN.value
    return render_template("admin/deletion_request.html", req=req, reasons=reasons, form=form,
                           due_by=deletion_review.due_by(req), days=deletion.RESPONSE_DAYS,
                           plan=erasure.plan(req.participant) if is_open else None,
                           seat=deletion.seat_blocking_deletion(req.participant, now=now_utc()) if is_open else None
                           ), status


@bp.get("/deletion-requests/<int:request_id>")
@no_store
def deletion_request(request_id: int):
    return _render_detail(_load(request_id), DeletionCloseForm(formdata=None))


def _close(request_id: int, status: DeletionStatus, done: str):
    req = _load(request_id)
    name = req.participant.name  # before it is anonymised
    form = DeletionCloseForm()
    rule = erasure.carry_out if status == DeletionStatus.DONE else erasure.decline
    ok, _ = submit(form, lambda: rule(req, actor=acting_user(), note=form.note.data, now=now_utc(),
                                      ctx=request_context()))
    if ok:
        flash(done.format(name=name), "success")
        return redirect(url_for("admin.deletion_request", request_id=req.id))
    return _render_detail(req, form, 409 if form.form_errors and not form.note.errors else 422)


@bp.post("/deletion-requests/<int:request_id>/done")
@no_store
def deletion_request_done(request_id: int):
    return _close(request_id, DeletionStatus.DONE,
                  "{name}'s data is deleted and their account closed; they were told by email.")


@bp.post("/deletion-requests/<int:request_id>/decline")
@no_store
def deletion_request_decline(request_id: int):
    return _close(request_id, DeletionStatus.DECLINED, "{name}'s deletion request is declined; they were told by email.")
