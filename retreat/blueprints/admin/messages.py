"""Admin: the outbox. Every message, paged, failed first, filtered by status, kind and recipient;
one message's headers, delivery and body (sealed links and clinical data never shown); retry a
failed one, cancel a pending one."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Optional

from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import page_arg, query_without_page
from retreat.blueprints.admin.forms import choices
from retreat.core.errors import DomainError
from retreat.core.pagination import paginate
from retreat.extensions import db
from retreat.messaging import outbox, render
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.web.forms import Length, refused, strip
from retreat.web.security import acting_user, request_context

STATUSES = [s.value for s in outbox.STATUS_ORDER]
PER_PAGE = 50


class MessageFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    status = SelectField("Status", validators=[Optional()])
    kind = SelectField("Kind of message", validators=[Optional()])
    recipient = StringField("Recipient (address or name)", validators=[Optional(), Length(max=254)], filters=[strip])
    q = StringField("Recipient, kind or key", validators=[Optional(), Length(max=100)], filters=[strip])

    def __init__(self, *args, kinds=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.status.choices = choices([("", "Any status")] + [(s, s.capitalize()) for s in STATUSES])
        self.kind.choices = choices([("", "Any kind")] + [(k, k.replace("_", " ")) for k in kinds])


def _status_arg(source) -> str | None:
    status = (source.get("status") or "").strip() or None
    if status is not None and status not in STATUSES:
        abort(400, description=f"Unknown status {status!r}.")
    return status


@bp.get("/messages")
def messages():
    _status_arg(request.args)  # an unknown status is a 400, as before
    kinds = outbox.templates_in_use()
    form = MessageFilterForm(request.args, kinds=kinds)
    if not form.validate():
        return render_template("admin/messages.html", form=form, page=None, counts=outbox.count_by_status(),
                               statuses=STATUSES, status=None, query={},
                               failed=OutboxStatus.FAILED.value, pending=OutboxStatus.PENDING.value), 400
    status = form.status.data or None
    page = paginate(outbox.messages_query(status=status, template=form.kind.data or None,
                                          recipient=form.recipient.data or None, search=form.q.data or None),
                    page=page_arg(), per_page=PER_PAGE)
    return render_template("admin/messages.html", form=form, page=page, status=status,
                           query=query_without_page(), statuses=STATUSES, counts=outbox.count_by_status(),
                           failed=OutboxStatus.FAILED.value, pending=OutboxStatus.PENDING.value)


@bp.get("/messages/<int:message_id>")
def message_detail(message_id: int):
    msg = db.session.get(OutboxMessage, message_id)
    if msg is None:
        abort(404)
    try:
        rendered, render_error = render.preview(msg), None
    except render.UnknownTemplate as exc:
        rendered, render_error = None, str(exc)
    return render_template("admin/message_detail.html", m=msg, rendered=rendered, render_error=render_error,
                           sealed=msg.private_enc is not None, withheld=render.WITHHELD,
                           failed=OutboxStatus.FAILED.value, pending=OutboxStatus.PENDING.value)


def _act(message_id: int, action, done: str):
    status = _status_arg(request.args)
    try:
        msg = action(message_id, actor=acting_user(), ctx=request_context())
        flash(done.format(id=msg.id, email=msg.recipient_email), "success")
    except DomainError as exc:
        refused(exc.message, "error")
    if request.args.get("back") == "detail":
        return redirect(url_for("admin.message_detail", message_id=message_id))
    return redirect(url_for("admin.messages", status=status))


@bp.post("/messages/<int:message_id>/retry")
def message_retry(message_id: int):
    return _act(message_id, outbox.retry, "Message {id} to {email} is queued again.")


@bp.post("/messages/<int:message_id>/cancel")
def message_cancel(message_id: int):
    return _act(message_id, outbox.cancel_message, "Message {id} to {email} is cancelled.")
