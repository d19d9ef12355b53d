"""The integration journal: the participant's private space after (and before) a retreat.

Entries are written across the realms of integration (body, mind, emotions, relationships,
spirit, work and play), optionally from a prompt. The text is clinical: it lives only in
``text_enc`` (sealed with ``clinical_access.seal_text``). An entry is private to its author; the
author may share one entry with the facilitators of one of their cohorts (``enrollment_id`` says
which, ``shared_at`` says since when) and unshare it again. ``version`` grows with every text
change so that an edit made from a stale page is refused instead of overwriting.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.cohorts.models import Enrollment
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class JournalRealm(StrEnum):
    BODY = "body"
    MIND = "mind"
    EMOTIONS = "emotions"
    RELATIONSHIPS = "relationships"
    SPIRIT = "spirit"
    WORK_PLAY = "work_play"


class JournalEntry(TimestampMixin, db.Model):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"), index=True)
    realm: Mapped[str] = enum_column(JournalRealm, nullable=False)
    prompt_key: Mapped[str | None] = mapped_column(String(40))
    text_enc: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    shared_at: Mapped[datetime | None] = mapped_column()

    participant: Mapped[User] = relationship()
    enrollment: Mapped[Enrollment | None] = relationship()

    @property
    def is_shared(self) -> bool:
        return self.shared_at is not None and self.enrollment_id is not None
