"""Admin: the SMS outbox. Each text's status, kind, masked number, due time, attempts, error and
its body as operators may see it (a verification code masked; links carry no tokens)."""

from __future__ import annotations

from flask import abort, render_template, request

from retreat.blueprints.admin import bp
from retreat.core.crypto import decrypt_field
from retreat.messaging import sms_outbox
from retreat.messaging.sms_models import SmsStatus

STATUSES = [s.value for s in SmsStatus]


@bp.get("/messages/sms")
def sms_messages():
    status = (request.args.get("status") or "").strip() or None
    if status is not None and status not in STATUSES:
        abort(400, description=f"Unknown status {status!r}.")
    rows = [(m, sms_outbox.masked(decrypt_field(m.to_number_enc) or ""), sms_outbox.preview(m))
            for m in sms_outbox.list_messages(status=status, limit=200)]
    return render_template("admin/sms_messages.html", rows=rows, counts=sms_outbox.count_by_status(),
                           statuses=STATUSES, status=status)
