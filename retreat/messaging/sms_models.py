"""The SMS outbox: one row per text message, written in the transaction of the change that causes it
and sent by ``messaging.sms_dispatcher`` (claim with a lease, send with no transaction open, mark).

The number is stored encrypted (``to_number_enc``, core.crypto) with a keyed hash beside it
(``to_hash``) so that an inbound STOP can find and cancel the queued messages to that number.
Bodies are rendered when sent from a fixed, non-clinical template and plain ``context``; a
verification code is sealed in ``private_enc`` (messaging.sealed) and cleared once sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retreat.core.crypto import encrypted_text
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.messaging.models import OutboxStatus

# The email outbox's states, word for word (pending, sending, sent, failed, cancelled).
SmsStatus = OutboxStatus


class SmsMessage(TimestampMixin, db.Model):
    __tablename__ = "sms_messages"
    __table_args__ = (Index("ix_sms_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "<the email's dedupe key>:sms" for a reminder: one SMS per event, whatever is saved again.
    dedupe_key: Mapped[str] = mapped_column(String(220), unique=True)
    group_key: Mapped[str | None] = mapped_column(String(120), index=True)
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    to_number_enc: Mapped[str] = mapped_column(Text)
    to_hash: Mapped[str] = mapped_column(String(64), index=True)
    recipient_tz: Mapped[str] = mapped_column(String(64), default="UTC")
    template: Mapped[str] = mapped_column(String(60))
    context: Mapped[dict] = mapped_column(JSON, default=dict)  # plain values; never clinical
    private_enc: Mapped[str | None] = mapped_column(Text)  # a verification code, sealed
    # Non-essential messages (reminders) wait out quiet hours; a code is sent at once.
    essential: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime] = mapped_column()
    # A reminder that could only go out after this (quiet hours, an outage) is cancelled instead.
    stale_after: Mapped[datetime | None] = mapped_column()
    next_attempt_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = enum_column(SmsStatus, default=SmsStatus.PENDING, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    leased_by: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()

    to_number = encrypted_text("to_number_enc", doc="E.164, encrypted at rest")
