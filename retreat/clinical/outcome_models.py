"""Outcome measures: PHQ-9 and GAD-7 answered at baseline (the intake), right after the retreat,
at 1 month and at 3 months.

Scores are clinical data: the item answers and the total live only in ``answers_enc`` (encrypted
JSON ``{"items": [...], "total": n}``), written by ``retreat.clinical.outcomes.record`` and read
only through the audited read paths. The row itself says which instrument and timepoint exist,
so response rates can be counted without decrypting anything.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.cohorts.models import Cohort, Enrollment
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class OutcomeInstrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"


class OutcomeTimepoint(StrEnum):
    BASELINE = "baseline"
    POST = "post"
    MONTH_1 = "month_1"
    MONTH_3 = "month_3"


class OutcomeSource(StrEnum):
    INTAKE = "intake"  # copied from the medical intake when it was submitted
    SURVEY = "survey"  # answered from a follow-up survey link


class OutcomeMeasure(TimestampMixin, db.Model):
    __tablename__ = "outcome_measures"
    __table_args__ = (UniqueConstraint("enrollment_id", "instrument", "timepoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="RESTRICT"), index=True)
    instrument: Mapped[str] = enum_column(OutcomeInstrument, nullable=False)
    timepoint: Mapped[str] = enum_column(OutcomeTimepoint, nullable=False)
    source: Mapped[str] = mapped_column(String(16), default=OutcomeSource.SURVEY.value)
    answers_enc: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column()

    enrollment: Mapped[Enrollment] = relationship()
    participant: Mapped[User] = relationship()
    cohort: Mapped[Cohort] = relationship()
