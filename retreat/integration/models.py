"""Integration after the retreat: the cohort's integration plan and circle RSVPs.

``IntegrationPlan`` (one per cohort) says when the weekly integration circles happen (N weeks,
weekday, local wall-clock time in the cohort's zone, duration, place or video link, facilitator)
and which follow-ups are on (24 h / 72 h check-ins, post / 1-month / 3-month surveys). ``version``
grows with every edit so that an edit made from a stale page is refused instead of overwriting.

Circles are ``CohortSession`` rows of kind ``integration_circle`` with ``circle_sequence`` set
(1..N, unique per cohort); ``retreat.integration.circles.sync_circles`` creates and moves
them. A circle session added by hand has no sequence and is never touched by the plan.

``CircleRsvp``: one answer per (circle session, enrollment): going or can't make it, with a note.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.cohorts.models import Cohort, CohortSession, Enrollment
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class RsvpStatus(StrEnum):
    GOING = "going"
    CANT_MAKE_IT = "cant_make_it"


class IntegrationPlan(TimestampMixin, db.Model):
    __tablename__ = "integration_plans"
    __table_args__ = (
        CheckConstraint("circle_weeks >= 1 AND circle_weeks <= 52", name="circle_weeks_range"),
        CheckConstraint("circle_weekday >= 0 AND circle_weekday <= 6", name="circle_weekday_range"),
        CheckConstraint("circle_duration_minutes >= 15 AND circle_duration_minutes <= 480",
                        name="circle_duration_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), unique=True)
    circle_weeks: Mapped[int] = mapped_column(Integer, default=6)
    circle_weekday: Mapped[int] = mapped_column(Integer, default=1)  # 0 = Monday (datetime.weekday())
    circle_local_time: Mapped[time] = mapped_column(Time, default=time(18, 0))
    circle_duration_minutes: Mapped[int] = mapped_column(Integer, default=90)
    circle_location: Mapped[str] = mapped_column(String(200), default="")
    circle_video_url: Mapped[str] = mapped_column(String(500), default="")
    circle_facilitator_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True)
    checkin_24h: Mapped[bool] = mapped_column(Boolean, default=True)
    checkin_72h: Mapped[bool] = mapped_column(Boolean, default=True)
    survey_post: Mapped[bool] = mapped_column(Boolean, default=True)
    survey_month_1: Mapped[bool] = mapped_column(Boolean, default=True)
    survey_month_3: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    cohort: Mapped[Cohort] = relationship()
    circle_facilitator: Mapped[User | None] = relationship(foreign_keys=[circle_facilitator_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])


class CircleRsvp(TimestampMixin, db.Model):
    __tablename__ = "circle_rsvps"
    __table_args__ = (UniqueConstraint("session_id", "enrollment_id", name="one_per_participant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("cohort_sessions.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = enum_column(RsvpStatus, nullable=False)
    note: Mapped[str] = mapped_column(String(300), default="")
    answered_at: Mapped[datetime] = mapped_column()

    session: Mapped[CohortSession] = relationship()
    enrollment: Mapped[Enrollment] = relationship()
