"""Admin: the outbox. Failed messages first; retry a failed one, cancel a pending one."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from retreat.blueprints.admin import bp
from retreat.core.errors import DomainError
from retreat.messaging import outbox
from retreat.messaging.models import OutboxStatus
from retreat.web.forms import refused
from retreat.web.security import acting_user, request_context

STATUSES = [s.value for s in outbox.STATUS_ORDER]


def _status_arg(source) -> str | None:
    status = (source.get("status") or "").strip() or None
    if status is not None and status not in STATUSES:
        abort(400, description=f"Unknown status {status!r}.")
    return status


@bp.get("/messages")
def messages():
    status = _status_arg(request.args)
    search = (request.args.get("q") or "").strip()[:100]
    rows = outbox.list_messages(status=status, search=search or None, limit=200)
    return render_template("admin/messages.html", rows=rows, status=status, search=search,
                           statuses=STATUSES, counts=outbox.count_by_status(),
                           failed=OutboxStatus.FAILED.value, pending=OutboxStatus.PENDING.value)


def _act(message_id: int, action, done: str):
    status = _status_arg(request.args)
    try:
        msg = action(message_id, actor=acting_user(), ctx=request_context())
        flash(done.format(id=msg.id, email=msg.recipient_email), "success")
    except DomainError as exc:
        refused(exc.message, "error")
    return redirect(url_for("admin.messages", status=status))


@bp.post("/messages/<int:message_id>/retry")
def message_retry(message_id: int):
    return _act(message_id, outbox.retry, "Message {id} to {email} is queued again.")


@bp.post("/messages/<int:message_id>/cancel")
def message_cancel(message_id: int):
    return _act(message_id, outbox.cancel_message, "Message {id} to {email} is cancelled.")
