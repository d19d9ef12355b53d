"""The participant's medical intake, clearance outcome and message thread, and their own data
(export and deletion request). Every page here is clinical: never cached."""

from __future__ import annotations

import json

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField, TextAreaField
from wtforms.validators import Optional

from retreat.blueprints.participant import bp
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance, screening
from retreat.clinical import clearance_status as clearance_state
from retreat.cohorts.models import Enrollment
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.privacy import deletion
from retreat.privacy import export as privacy_export
from retreat.timeutil import format_local, now_utc
from retreat.web.clinical import read_or_404
from retreat.web.forms import IntegerField, refused, show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object


class IntakeForm(FlaskForm):
    """Built from the screening catalogue below, so the questions live in one place."""


for _q in screening.TEXT_QUESTIONS:
    setattr(IntakeForm, _q.key, (TextAreaField if _q.multiline else StringField)(_q.label, validators=[Optional()]))
for _q in screening.NUMBER_QUESTIONS:
    setattr(IntakeForm, _q.key, IntegerField(_q.label, validators=[Optional()]))
for _c in screening.CONDITIONS:
    setattr(IntakeForm, _c.key, BooleanField(_c.label))
for _i, _text in enumerate(screening.PHQ9_ITEMS, start=1):
    setattr(IntakeForm, f"phq9_{_i}", RadioField(_text, choices=screening.FREQUENCY_CHOICES, coerce=int,
                                                  validators=[Optional()]))
for _i, _text in enumerate(screening.GAD7_ITEMS, start=1):
    setattr(IntakeForm, f"gad7_{_i}", RadioField(_text, choices=screening.FREQUENCY_CHOICES, coerce=int,
                                                  validators=[Optional()]))


class ReplyForm(FlaskForm):
    message = TextAreaField("Your reply to the provider", validators=[Optional()])


class DeletionForm(FlaskForm):
    # Bounded (and NUL refused) by the rule, privacy.deletion.bounded_text; maxlength only helps the browser.
    reason = TextAreaField("Anything you would like us to know (optional)", validators=[Optional()],
                           render_kw={"maxlength": deletion.REASON_MAX},
                           description=f"Up to {deletion.REASON_MAX} characters. Only the practice's admins read it.")
    confirm = BooleanField("I understand what is deleted now and what the practice must keep")


def _my_enrollment(enrollment_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enrollment_id)
    require_object(enr is not None and enr.participant_id == acting_user().id)
    return enr


def _answers(form: IntakeForm) -> dict:
    return {key: form[key].data for key in screening.ALL_KEYS}


def _intake_sections() -> dict:
    return {
        "text": screening.TEXT_QUESTIONS,
        "numbers": screening.NUMBER_QUESTIONS,
        "conditions": screening.CONDITIONS,
        "phq9": [f"phq9_{i}" for i in range(1, 10)],
        "gad7": [f"gad7_{i}" for i in range(1, 8)],
        "stem": screening.QUESTIONNAIRE_STEM,
        "hints": {q.key: q.hint for q in screening.TEXT_QUESTIONS},
    }


@bp.get("/intake")
@no_store
def intake_index():
    user = acting_user()
    now = now_utc()
    enrollments = list(db.session.scalars(db.select(Enrollment).where(Enrollment.participant_id == user.id)
                                          .order_by(Enrollment.id.desc())))
    rows = [{"enrollment": e, "status": clearance_state.status_of(e, now), "intake": clearance_state.get_intake(e)}
            for e in enrollments]
    return render_template("participant/intake_index.html", rows=rows)


@bp.route("/enrollments/<int:enrollment_id>/intake", methods=["GET", "POST"])
@no_store
def intake(enrollment_id: int):
    enr = _my_enrollment(enrollment_id)
    user = acting_user()
    now = now_utc()
    current = clearance_state.get_intake(enr)
    if current is not None and not current.is_editable:
        flash("Your intake is with the medical provider. You will be able to update it here if they ask for "
              "more information.", "info")
        return redirect(url_for("participant.clearance_status", enrollment_id=enr.id))
    form = IntakeForm()
    status = 200
    safety = False
    if form.validate_on_submit():
        try:
            if request.form.get("action") == "submit":
                clearance.submit(enr, user, _answers(form), now=now, ctx=request_context())
                flash("Thank you. Your intake was sent to the partner medical provider for review.", "success")
                return redirect(url_for("participant.clearance_status", enrollment_id=enr.id))
            clearance.save_draft(enr, user, _answers(form), now=now, ctx=request_context())
            flash("Your draft is saved. You can come back to it at any time.", "success")
            return redirect(url_for("participant.intake", enrollment_id=enr.id))
        except ValidationFailed as exc:
            show_domain_error(form, exc)
            status = 422
        except Conflict as exc:
            refused(exc.message, "error")
            return redirect(url_for("participant.clearance_status", enrollment_id=enr.id))
    elif request.method == "POST":
        status = 422
    elif current is not None and current.answers_enc:
        record = read_or_404(clinical_access.read, user, enr, [clinical_access.ANSWERS], ctx=request_context(),
                             now=now)
        form = IntakeForm(formdata=None, data=record.answers or {})
        safety = screening.safety_signal(record.answers or {})
    request_ = clearance_state.open_request(enr)
    return render_template("participant/intake.html", form=form, enrollment=enr, intake=current,
                           sections=_intake_sections(), safety=safety, open_request=request_,
                           saved_local=format_local(current.last_saved_at, user.tz) if current and
                           current.last_saved_at else ""), status


@bp.post("/enrollments/<int:enrollment_id>/intake/autosave")
@no_store
def intake_autosave(enrollment_id: int):
    enr = _my_enrollment(enrollment_id)
    user = acting_user()
    form = IntakeForm()
    if not form.validate():
        return jsonify(error="Some answers need attention.", errors=form.errors), 422
    now = now_utc()
    try:
        result = clearance.save_draft(enr, user, _answers(form), now=now, ctx=request_context())
    except (ValidationFailed, Conflict) as exc:
        return jsonify(error=exc.message, errors=exc.errors), exc.status
    return jsonify(saved_at=format_local(now, user.tz, "%H:%M"), safety=result.safety)


@bp.get("/enrollments/<int:enrollment_id>/clearance")
@no_store
def clearance_status(enrollment_id: int):
    enr = _my_enrollment(enrollment_id)
    user = acting_user()
    now = now_utc()
    status = clearance_state.status_of(enr, now)
    intake_row = clearance_state.get_intake(enr)
    record = None
    if status.request is not None:
        record = read_or_404(clinical_access.read, user, enr, [clinical_access.DECISION, clinical_access.THREAD],
                             ctx=request_context(), now=now)
    return render_template("participant/intake_status.html", enrollment=enr, status=status, record=record,
                           intake=intake_row, reply_form=ReplyForm(), labels=clearance_state.DECISION_LABELS,
                           safety=bool(intake_row and intake_row.safety_concern))


@bp.post("/enrollments/<int:enrollment_id>/clearance/reply")
@no_store
def clearance_reply(enrollment_id: int):
    enr = _my_enrollment(enrollment_id)
    form = ReplyForm()
    req = clearance_state.open_request(enr)
    if form.validate_on_submit():
        if req is None:
            flash("This review is closed, so messages can no longer be added.", "error")
        else:
            try:
                clearance.reply(req, acting_user(), form.message.data or "", now=now_utc(), ctx=request_context())
                flash("Your message was sent to the provider.", "success")
            except (ValidationFailed, Conflict) as exc:
                refused(exc.message, "error")
    return redirect(url_for("participant.clearance_status", enrollment_id=enr.id))


# --------------------------------------------------------------------------------------------
# My data: export and deletion request
# --------------------------------------------------------------------------------------------


def _my_data_page(form: DeletionForm, status: int = 200, *, busy: str | None = None):
    latest = deletion.latest_request(acting_user())
    return render_template("participant/intake_data.html", form=form, latest=latest, busy=busy,
                           requested_at=latest.last_requested_at if latest else None), status


@bp.get("/data")
@no_store
def my_data():
    return _my_data_page(DeletionForm())


def _export() -> dict:
    """The export, built once even when asked twice at once (the second ask gets a 409 page)."""
    user = acting_user()
    try:
        return read_or_404(privacy_export.prepare, user, user, ctx=request_context(), now=now_utc())
    except Conflict as exc:
        page, status = _my_data_page(DeletionForm(formdata=None), 409, busy=exc.message)
        abort(Response(page, status, headers={"Retry-After": "5", "Cache-Control": "no-store"}))


@bp.get("/data/export.json")
@no_store
def export_json():
    body = json.dumps(_export(), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="my-retreat-data.json"'})


@bp.get("/data/export.html")
@no_store
def export_html():
    return render_template("participant/intake_export.html", page=privacy_export.readable(_export()))


@bp.post("/data/delete")
@no_store
def request_deletion():
    form = DeletionForm()
    user = acting_user()
    if not form.validate_on_submit() or not form.confirm.data:
        if form.is_submitted() and not form.confirm.data:
            form.confirm.errors = ["Tick the box to confirm."]
        return _my_data_page(form, 422)
    try:
        outcome = deletion.request_deletion(user, reason=form.reason.data or "", now=now_utc(), ctx=request_context())
    except ValidationFailed as exc:
        show_domain_error(form, exc)
        return _my_data_page(form, 422)
    erased = outcome.erased_drafts
    flash(("Your deletion request is logged (added to the request you already made). " if outcome.repeated
           else "Your deletion request is logged. ")
          + (f"{erased} unsent draft(s) were erased now. " if erased else "")
          + f"The practice will confirm what else is deleted within {deletion.RESPONSE_DAYS} days.", "success")
    return redirect(url_for("participant.my_data"))
