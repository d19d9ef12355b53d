"""Durable outbox: every email the product sends is first a row here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxMessage(TimestampMixin, db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The dispatcher's claim query: due pending rows, oldest first.
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="email")  # email (only transport today)
    # Dedupe: the same logical message (e.g. "consult-12-reminder-24h") is queued at most once.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Groups the messages of one object so they can be cancelled together ("consult:12").
    group_key: Mapped[str | None] = mapped_column(String(120), index=True)
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    recipient_email: Mapped[str] = mapped_column(String(254))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    recipient_tz: Mapped[str] = mapped_column(String(64), default="UTC")
    template: Mapped[str] = mapped_column(String(100))
    # Ids and plain values only; never clinical data.
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    # Calendar invite to attach, as plain data: {"uid", "sequence", "method", "start", "end", "summary", ...}
    ics: Mapped[dict | None] = mapped_column(JSON)
    # Capability links (reset, manage, follow-up answer), encrypted; cleared once sent or
    # cancelled. See retreat.messaging.sealed.
    private_enc: Mapped[str | None] = mapped_column(Text)
    essential: Mapped[bool] = mapped_column(Boolean, default=True)
    due_at: Mapped[datetime] = mapped_column()
    next_attempt_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = enum_column(OutboxStatus, default=OutboxStatus.PENDING, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    leased_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    # BASE_URL when the message was queued: links in its context, sealed links and invite that start
    # with it are rewritten to the BASE_URL of the moment it is sent (retreat.messaging.links).
    link_origin: Mapped[str | None] = mapped_column(String(200))
    # The SMS twin's spec (``enqueue(sms=...)``: template and plain fields, ``stale_after`` as ISO
    # text), kept so a number verified later still gets the twin (``sms_outbox.queue_pending_twins``).
    sms_spec: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # SQL NULL without one
