"""Cohorts: retreats, cohorts and sessions, enrollments (the seat pipeline), waitlist parties,
preparation checklist, versioned consents, roster notes and attendance.

Seat accounting: ``Cohort.seats_taken`` counts enrollments whose ``seat`` is offered, held or
confirmed. It is changed only by ``retreat.cohorts.seats`` with the cohort row locked, and the
database refuses ``seats_taken > capacity`` (CHECK), so a bug elsewhere cannot oversell.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import ProviderOrganization, User
from retreat.core.crypto import encrypted_text
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.timeutil import DEFAULT_PRACTICE_ZONE, now_utc


class CohortStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DepositTiming(StrEnum):
    BEFORE_CLEARANCE = "before_clearance"
    AFTER_CLEARANCE = "after_clearance"


class SessionKind(StrEnum):
    ORIENTATION = "orientation"
    DOSING = "dosing"
    IFS = "ifs"
    INTEGRATION_CIRCLE = "integration_circle"


class EnrollmentStatus(StrEnum):
    APPLIED = "applied"
    INTAKE_SUBMITTED = "intake_submitted"
    CLEARANCE_PENDING = "clearance_pending"
    CLEARED = "cleared"
    DEPOSIT_PAID = "deposit_paid"
    BALANCE_PAID = "balance_paid"
    ATTENDED = "attended"
    COMPLETED = "completed"
    # exits
    WITHDRAWN = "withdrawn"
    NOT_CLEARED = "not_cleared"
    DECLINED = "declined"
    OFFER_EXPIRED = "offer_expired"
    CANCELLED = "cancelled"  # the practice cancelled the cohort


# Leaving the pipeline through one of these frees the seat (``enrollment.transition``).
EXITS = frozenset({EnrollmentStatus.WITHDRAWN, EnrollmentStatus.NOT_CLEARED, EnrollmentStatus.DECLINED,
                   EnrollmentStatus.OFFER_EXPIRED, EnrollmentStatus.CANCELLED})
# Before the deposit step: still applying, in review or cleared.
PRE_DEPOSIT = frozenset({EnrollmentStatus.APPLIED, EnrollmentStatus.INTAKE_SUBMITTED,
                         EnrollmentStatus.CLEARANCE_PENDING, EnrollmentStatus.CLEARED})


class SeatState(StrEnum):
    NONE = "none"
    OFFERED = "offered"  # a waitlist offer reserves the seat until offer_expires_at
    HELD = "held"  # payment in progress until hold_expires_at
    CONFIRMED = "confirmed"  # deposit paid


class AttendanceStatus(StrEnum):
    PRESENT = "present"
    LATE = "late"
    ABSENT = "absent"


class Retreat(TimestampMixin, db.Model):
    __tablename__ = "retreats"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(400), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    # Where the dosing happens, for the clinicians' licences: a US state or other region code, ISO country.
    region: Mapped[str] = mapped_column(String(8), default="", server_default="")
    country: Mapped[str] = mapped_column(String(2), default="US", server_default="US")
    included: Mapped[str] = mapped_column(Text, default="")  # one item a line
    guide_filename: Mapped[str | None] = mapped_column(String(200))  # original name, for download
    guide_stored_name: Mapped[str | None] = mapped_column(String(80))  # random name under uploads/
    guide_size: Mapped[int | None] = mapped_column(Integer)
    is_published: Mapped[bool] = mapped_column(Boolean, default=True)

    cohorts: Mapped[list[Cohort]] = relationship(back_populates="retreat", order_by="Cohort.starts_at")

    @property
    def included_items(self) -> list[str]:
        return [line.strip("-• ").strip() for line in (self.included or "").splitlines() if line.strip()]


class Cohort(TimestampMixin, db.Model):
    __tablename__ = "cohorts"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("seats_taken >= 0 AND seats_taken <= capacity", name="seats_within_capacity"),
        CheckConstraint("deposit_minor >= 0 AND deposit_minor <= price_minor", name="deposit_within_price"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    retreat_id: Mapped[int] = mapped_column(ForeignKey("retreats.id", ondelete="RESTRICT"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    # The rules and forms that create a cohort give it the practice's zone (accounts.practice);
    # this is only the fallback of a row written without one.
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_PRACTICE_ZONE)
    capacity: Mapped[int] = mapped_column(Integer)
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    price_minor: Mapped[int] = mapped_column(Integer)
    deposit_minor: Mapped[int] = mapped_column(Integer)
    # Optional screening fee charged with the application (0: none); it counts toward the deposit,
    # so it is less than the deposit (``catalog``); rules in ``payments.screening``.
    screening_fee_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    balance_due_on: Mapped[date | None] = mapped_column(Date)
    refund_policy: Mapped[str] = mapped_column(Text, default="")
    deposit_timing: Mapped[str] = enum_column(DepositTiming, default=DepositTiming.AFTER_CLEARANCE, nullable=False)
    provider_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_organizations.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(CohortStatus, default=CohortStatus.DRAFT, nullable=False)
    hold_minutes: Mapped[int] = mapped_column(Integer, default=30)
    offer_hours: Mapped[int] = mapped_column(Integer, default=48)

    retreat: Mapped[Retreat] = relationship(back_populates="cohorts")
    provider_organization: Mapped[ProviderOrganization | None] = relationship()
    sessions: Mapped[list[CohortSession]] = relationship(
        back_populates="cohort", order_by="CohortSession.starts_at", cascade="all, delete-orphan")
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="cohort")

    @property
    def seats_available(self) -> int:
        return max(0, self.capacity - self.seats_taken)

    @property
    def requires_clearance_before_deposit(self) -> bool:
        return self.deposit_timing == DepositTiming.AFTER_CLEARANCE


class CohortSession(TimestampMixin, db.Model):
    __tablename__ = "cohort_sessions"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),
                      UniqueConstraint("cohort_id", "circle_sequence", name="one_circle_per_sequence"))

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = enum_column(SessionKind, nullable=False)
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    location: Mapped[str] = mapped_column(String(200), default="")
    video_url: Mapped[str] = mapped_column(String(500), default="")
    facilitator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Integration circles generated from the cohort's IntegrationPlan: 1..N (None: added by hand).
    circle_sequence: Mapped[int | None] = mapped_column(Integer)
    # Grows each time the session moves: the .ics SEQUENCE, and part of its messages' dedupe keys.
    calendar_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    cohort: Mapped[Cohort] = relationship(back_populates="sessions")
    facilitator: Mapped[User | None] = relationship()

    @property
    def in_person(self) -> bool:
        """Held at a place (not online): its time reads in the venue's zone, the cohort's."""
        return bool(self.location) and not self.video_url

    @property
    def venue_tz(self) -> str | None:
        """The zone of the venue for an in-person session (the cohort's), None when online."""
        return self.cohort.timezone if self.in_person else None


class EnrollmentParty(TimestampMixin, db.Model):
    """Two people who applied together: offered seats only together."""

    __tablename__ = "enrollment_parties"

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    # The partner's email until they apply and join the party.
    invite_email: Mapped[str | None] = mapped_column(String(254))

    members: Mapped[list[Enrollment]] = relationship(back_populates="party", order_by="Enrollment.id")


class Enrollment(TimestampMixin, db.Model):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("cohort_id", "participant_id", name="one_per_cohort"),
        Index("ix_enrollments_cohort_seat", "cohort_id", "seat"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="RESTRICT"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(EnrollmentStatus, default=EnrollmentStatus.APPLIED, nullable=False)
    seat: Mapped[str] = enum_column(SeatState, default=SeatState.NONE, nullable=False)
    hold_expires_at: Mapped[datetime | None] = mapped_column()
    holds_taken: Mapped[int] = mapped_column(Integer, default=0)
    seat_confirmed_at: Mapped[datetime | None] = mapped_column()
    # Waitlist: a position means "waiting"; an offer reserves a seat until offer_expires_at.
    waitlist_position: Mapped[int | None] = mapped_column(Integer)
    waitlisted_at: Mapped[datetime | None] = mapped_column()
    offer_expires_at: Mapped[datetime | None] = mapped_column()
    offers_made: Mapped[int] = mapped_column(Integer, default=0)
    party_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment_parties.id", ondelete="SET NULL"), index=True)
    # Application (not clinical, but personal): why this retreat; encrypted at rest, read as .motivation.
    motivation_enc: Mapped[str | None] = mapped_column(Text)
    motivation = encrypted_text("motivation_enc", doc="Why this retreat, in the applicant's words.")
    lodging: Mapped[str] = mapped_column(String(120), default="")
    applied_at: Mapped[datetime] = mapped_column(default=now_utc)
    # The cohort's refund schedule when this person applied ([[days_before, percent], ...]):
    # refunds follow it even if the cohort's schedule changes later (payments.refunds).
    refund_schedule: Mapped[list | None] = mapped_column(JSON)
    # The cohort's screening fee when this person applied (None: no fee), and when it was paid
    # (set from the payment's webhook): the application counts as submitted once it is paid.
    screening_fee_minor: Mapped[int | None] = mapped_column(Integer)
    screening_fee_paid_at: Mapped[datetime | None] = mapped_column()

    cohort: Mapped[Cohort] = relationship(back_populates="enrollments")
    participant: Mapped[User] = relationship()
    party: Mapped[EnrollmentParty | None] = relationship(back_populates="members")
    transitions: Mapped[list[EnrollmentTransition]] = relationship(
        back_populates="enrollment", order_by="EnrollmentTransition.id")
    checklist: Mapped[list[ChecklistItem]] = relationship(
        back_populates="enrollment", order_by="ChecklistItem.due_at, ChecklistItem.id")

    @property
    def screening_fee_due(self) -> bool:
        """A screening fee is owed and not paid yet: the application is not submitted."""
        return bool(self.screening_fee_minor) and self.screening_fee_paid_at is None

    @property
    def is_waitlisted(self) -> bool:
        return self.waitlist_position is not None

    @property
    def has_left(self) -> bool:
        """Left the pipeline through an exit (withdrawn, not cleared, declined, offer expired, cancelled)."""
        return EnrollmentStatus(self.status) in EXITS

    @property
    def is_active(self) -> bool:
        """Still in the pipeline: neither left nor completed."""
        return not self.has_left and self.status != EnrollmentStatus.COMPLETED

    @property
    def has_confirmed_seat(self) -> bool:
        """A confirmed seat and still taking part (completed included): circles and follow-ups are for them."""
        return self.seat == SeatState.CONFIRMED.value and not self.has_left


class EnrollmentTransition(db.Model):
    """Who moved an enrollment, when and why (status changes and seat events)."""

    __tablename__ = "enrollment_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(40))
    to_status: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")

    enrollment: Mapped[Enrollment] = relationship(back_populates="transitions")
    actor: Mapped[User | None] = relationship()


class ChecklistItem(TimestampMixin, db.Model):
    __tablename__ = "checklist_items"
    __table_args__ = (UniqueConstraint("enrollment_id", "key", name="one_per_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime] = mapped_column()
    # Dietary needs, emergency contact, ride home...: encrypted at rest, read as .answer.
    answer_enc: Mapped[str | None] = mapped_column(Text)
    answer = encrypted_text("answer_enc", doc="The participant's answer to this checklist task.")
    completed_at: Mapped[datetime | None] = mapped_column()

    enrollment: Mapped[Enrollment] = relationship(back_populates="checklist")


class ConsentDocument(TimestampMixin, db.Model):
    __tablename__ = "consent_documents"
    __table_args__ = (UniqueConstraint("kind", "version", name="one_per_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))  # e.g. "participation", "group-agreements"
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ConsentSignature(db.Model):
    __tablename__ = "consent_signatures"
    __table_args__ = (UniqueConstraint("enrollment_id", "document_id", name="one_per_document"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("consent_documents.id", ondelete="RESTRICT"), index=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    typed_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(64))
    document_sha256: Mapped[str] = mapped_column(String(64))

    document: Mapped[ConsentDocument] = relationship()
    enrollment: Mapped[Enrollment] = relationship()


class RosterNote(db.Model):
    """Facilitators' operational notes (never clinical)."""

    __tablename__ = "roster_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    author: Mapped[User | None] = relationship()


class Attendance(TimestampMixin, db.Model):
    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("session_id", "enrollment_id", name="one_per_session"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("cohort_sessions.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = enum_column(AttendanceStatus, nullable=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(default=now_utc)
