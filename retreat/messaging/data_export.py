"""Messages in a person's data export: what the practice sent (or will send) them — subject, channel,
date, status. Neither the body (it may carry sealed links) nor anything about other recipients."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select

from retreat.core import personal_data
from retreat.extensions import db
from retreat.messaging import render
from retreat.messaging.models import OutboxMessage


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def subject_of(msg: OutboxMessage) -> str:
    """The subject line as sent: the template's ``subject`` block alone, from the plain context
    (sealed entries are never opened); the template's name when it no longer renders."""
    try:
        txt = render.email_env().get_template(f"emails/{msg.template}.txt")
        values = {**(msg.context or {}), **render.branding(), "recipient_tz": msg.recipient_tz,
                  "recipient_name": msg.recipient_name}
        subject = " ".join("".join(txt.blocks["subject"](txt.new_context(values))).split())
    except Exception:  # noqa: BLE001 — an old message is listed all the same
        return msg.template
    return subject or msg.template


def messages_section(person, **_) -> dict:
    """``person``: the ``accounts.User`` (messaging sits below accounts, so it is not imported)."""
    rows = db.session.scalars(select(OutboxMessage).where(or_(
        OutboxMessage.recipient_user_id == person.id,
        func.lower(OutboxMessage.recipient_email) == person.email.lower())).order_by(OutboxMessage.due_at,
                                                                                   OutboxMessage.id))
    return {"messages_sent_to_you": [{"subject": subject_of(m), "channel": m.kind, "to": m.recipient_email,
                                      "due_at": _iso(m.due_at), "sent_at": _iso(m.sent_at), "status": m.status}
                                     for m in rows]}


personal_data.register_section("messages", messages_section, title="Messages we sent you",
                               covers=("outbox_messages",), order=98)
