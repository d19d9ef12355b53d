"""Dosing days: the partner provider organisation's settings (accepted licence kinds, vital-sign
thresholds, observation interval), the clinicians it assigns to a dosing session, and per person
one dosing record with its append-only entries (vitals, dose, checks, adverse events, discharge).

Clinical content lives only in ``*_enc`` columns (encrypted JSON, read through
``retreat.clinical.access``). The record keeps a state and a version (every write bumps it; a
write carrying an older version is refused); each entry carries the client's idempotency key,
unique, so a retried write is stored once.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import ProviderLicense, User
from retreat.cohorts.models import CohortSession, Enrollment
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.timeutil import now_utc

LICENSE_KINDS = ("MD", "DO", "NP", "PA", "RN", "LPN", "CRNA", "EMT-P")
DEFAULT_ACCEPTED_KINDS = "MD,DO,NP"


class DosingState(StrEnum):
    NOT_ARRIVED = "not_arrived"
    CHECKED_IN = "checked_in"
    PRE_CHECKS_DONE = "pre_checks_done"
    DOSED = "dosed"
    IN_SESSION = "in_session"
    CHECK_OVERDUE = "check_overdue"  # shown, never stored: an in-session record whose check is late
    RECOVERING = "recovering"
    DISCHARGED = "discharged"
    TRANSFERRED = "transferred"  # to hospital


STATE_LABELS = {
    DosingState.NOT_ARRIVED: "Not arrived", DosingState.CHECKED_IN: "Checked in",
    DosingState.PRE_CHECKS_DONE: "Pre-checks done", DosingState.DOSED: "Dosed",
    DosingState.IN_SESSION: "In session", DosingState.CHECK_OVERDUE: "Check overdue",
    DosingState.RECOVERING: "Recovering", DosingState.DISCHARGED: "Discharged",
    DosingState.TRANSFERRED: "Transferred to hospital",
}


class EntryKind(StrEnum):
    CHECK_IN = "check_in"
    OVERRIDE = "override"  # checked in although not ready, with a written reason
    PRE_VITALS = "pre_vitals"
    HOLD_CONFIRMED = "hold_confirmed"  # a clinician confirms dosing despite a held reading
    DOSE = "dose"
    CHECK = "check"
    ADVERSE_EVENT = "adverse_event"
    RECOVERY = "recovery"
    POST_VITALS = "post_vitals"
    DISCHARGE = "discharge"
    TRANSFER = "transfer"
    NOTE = "note"


class DosingSettings(TimestampMixin, db.Model):
    """One row per provider organisation; missing means the defaults."""

    __tablename__ = "dosing_settings"
    __table_args__ = (
        CheckConstraint("check_interval_minutes BETWEEN 5 AND 120", name="interval_range"),
        CheckConstraint("hold_systolic BETWEEN 100 AND 260 AND hold_diastolic BETWEEN 60 AND 160", name="bp_range"),
        CheckConstraint("hr_low < hr_high", name="hr_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("provider_organizations.id", ondelete="CASCADE"), unique=True)
    accepted_license_kinds: Mapped[str] = mapped_column(String(200), default=DEFAULT_ACCEPTED_KINDS)
    hold_systolic: Mapped[int] = mapped_column(Integer, default=160)
    hold_diastolic: Mapped[int] = mapped_column(Integer, default=100)
    hr_high: Mapped[int] = mapped_column(Integer, default=120)
    hr_low: Mapped[int] = mapped_column(Integer, default=50)
    spo2_low: Mapped[int] = mapped_column(Integer, default=92)
    check_interval_minutes: Mapped[int] = mapped_column(Integer, default=15)
    version: Mapped[int] = mapped_column(Integer, default=1)

    @property
    def accepted_kinds(self) -> list[str]:
        return [k for k in (self.accepted_license_kinds or "").split(",") if k]


class DosingAssignment(TimestampMixin, db.Model):
    """A clinician of the organisation staffing one dosing session, under one licence."""

    __tablename__ = "dosing_assignments"
    __table_args__ = (UniqueConstraint("session_id", "clinician_id", name="one_per_clinician"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("cohort_sessions.id", ondelete="CASCADE"), index=True)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    license_id: Mapped[int | None] = mapped_column(ForeignKey("provider_licenses.id", ondelete="SET NULL"))
    license_kind: Mapped[str] = mapped_column(String(32))
    license_state: Mapped[str] = mapped_column(String(8))
    license_expires_on: Mapped[date] = mapped_column(Date)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    session: Mapped[CohortSession] = relationship()
    clinician: Mapped[User] = relationship(foreign_keys=[clinician_id])
    license: Mapped[ProviderLicense | None] = relationship()


class DosingRecord(TimestampMixin, db.Model):
    """One person at one dosing session."""

    __tablename__ = "dosing_records"
    __table_args__ = (UniqueConstraint("session_id", "enrollment_id", name="one_per_person"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("cohort_sessions.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    state: Mapped[str] = enum_column(DosingState, default=DosingState.NOT_ARRIVED, nullable=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Pre-dose reading above the hold threshold: no dose until a clinician confirms.
    dose_held: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)  # a moderate/severe adverse event
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)  # checked in although not ready
    checked_in_at: Mapped[datetime | None] = mapped_column()
    dosed_at: Mapped[datetime | None] = mapped_column()
    next_check_due_at: Mapped[datetime | None] = mapped_column()
    discharged_at: Mapped[datetime | None] = mapped_column()
    # A note the provider chose to share with the retreat team (encrypted; read through access).
    shared_note_enc: Mapped[str | None] = mapped_column(Text)

    session: Mapped[CohortSession] = relationship()
    enrollment: Mapped[Enrollment] = relationship()
    entries: Mapped[list[DosingEntry]] = relationship(back_populates="record", order_by="DosingEntry.id")


class DosingEntry(db.Model):
    """One write on a dosing record (append-only). ``body_enc`` holds its clinical content."""

    __tablename__ = "dosing_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("dosing_records.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = enum_column(EntryKind, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    body_enc: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("provider_licenses.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=now_utc)  # when it happened (clinical time)
    recorded_at: Mapped[datetime] = mapped_column(default=now_utc)
    version_after: Mapped[int] = mapped_column(Integer)  # the record's version this write produced

    record: Mapped[DosingRecord] = relationship(back_populates="entries")
    actor: Mapped[User | None] = relationship()
