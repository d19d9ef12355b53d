"""A participant's deletion request, kept until the practice has handled it (and afterwards, as the
record that it did).

The participant's reason can hold health information: it lives only in ``reason_enc``, sealed with
``core.crypto`` as a JSON list of ``{"at", "text"}`` (a repeated request while one is open adds its
text to the open one). At most one open request per participant (a partial unique index backs the
rule in ``privacy.deletion_requests``). The admin's ``note`` says what was done or why it was declined;
it is shown to the participant in their export, so it is written for them, not for clinical detail.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.database import enum_column
from retreat.extensions import db


class DeletionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    DECLINED = "declined"


class DeletionRequest(db.Model):
    __tablename__ = "deletion_requests"
    __table_args__ = (
        Index("uq_deletion_requests_one_open", "participant_id", unique=True,
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(DeletionStatus, default=DeletionStatus.OPEN, nullable=False)
    requested_at: Mapped[datetime] = mapped_column(nullable=False)
    # The latest time the participant asked (a repeat while open keeps the request and moves this).
    last_requested_at: Mapped[datetime] = mapped_column(nullable=False)
    times_requested: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    reason_enc: Mapped[str | None] = mapped_column(Text)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)

    participant: Mapped[User] = relationship(foreign_keys=[participant_id])
    handled_by: Mapped[User | None] = relationship(foreign_keys=[handled_by_id])

    @property
    def is_open(self) -> bool:
        return self.status == DeletionStatus.OPEN


class DataExport(db.Model):
    """One row per person who ever asked for their export: the row a build locks (``FOR UPDATE
    SKIP LOCKED``), so that two asks at once (a double click, two tabs) build it once and the other
    is told it is being prepared. Holds no exported data: only when the last build ran."""

    __tablename__ = "data_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    times_built: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
