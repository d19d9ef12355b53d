"""Clearance: the medical intake, the clearance request to the partner provider organisation, the
request-more-information thread and safety alerts.

Clinical text lives only in the ``*_enc`` columns, encrypted with the keys in CLINICAL_DATA_KEYS
(Fernet tokens). Nothing outside ``retreat.clinical.access`` decrypts them: that one
read path checks who may see what and writes an audit event for every read.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import ProviderLicense, ProviderOrganization, User
from retreat.cohorts import roster_versions
from retreat.cohorts.models import Cohort, Enrollment
from retreat.consults.models import Consultation
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.timeutil import now_utc


class IntakeStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ERASED = "erased"  # a draft erased at the participant's request


class ScreeningLevel(StrEnum):
    NONE = "none"
    CLEARANCE_REQUIRED = "clearance_required"
    ABSOLUTE = "absolute"


class ClearanceStatus(StrEnum):
    PENDING = "pending"  # waiting for the provider
    INFO_REQUESTED = "info_requested"  # waiting for the participant
    DECIDED = "decided"
    WITHDRAWN = "withdrawn"  # the application closed before a decision
    LAPSED = "lapsed"  # a clearance that expired before the retreat (a renewal request follows)


class Decision(StrEnum):
    CLEARED = "cleared"
    CLEARED_WITH_CONDITIONS = "cleared_with_conditions"
    NOT_CLEARED = "not_cleared"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


OPEN_STATUSES = (ClearanceStatus.PENDING.value, ClearanceStatus.INFO_REQUESTED.value)


class Intake(TimestampMixin, db.Model):
    __tablename__ = "intakes"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), unique=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(IntakeStatus, default=IntakeStatus.DRAFT, nullable=False)
    # Encrypted JSON: every answer (history, medications, checklist, PHQ-9/GAD-7 items ...).
    answers_enc: Mapped[str | None] = mapped_column(Text)
    # Encrypted JSON: the referral summary (flags with their labels, baseline scores and bands).
    screening_enc: Mapped[str | None] = mapped_column(Text)
    # Not details: the summary level orders the provider's queue.
    screening_level: Mapped[str | None] = mapped_column(String(32))
    safety_concern: Mapped[bool] = mapped_column(Boolean, default=False)
    last_saved_at: Mapped[datetime | None] = mapped_column()
    submitted_at: Mapped[datetime | None] = mapped_column()
    submissions: Mapped[int] = mapped_column(Integer, default=0)

    enrollment: Mapped[Enrollment] = relationship()
    participant: Mapped[User] = relationship()

    @property
    def is_editable(self) -> bool:
        return self.status == IntakeStatus.DRAFT


class ClearanceRequest(TimestampMixin, db.Model):
    __tablename__ = "clearance_requests"
    __table_args__ = (
        # At most one open request per enrollment (a double submit cannot refer twice).
        Index("uq_clearance_requests_one_open", "enrollment_id", unique=True,
              postgresql_where=text("status IN ('pending', 'info_requested')"),
              sqlite_where=text("status IN ('pending', 'info_requested')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    intake_id: Mapped[int] = mapped_column(ForeignKey("intakes.id", ondelete="RESTRICT"), index=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("provider_organizations.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(ClearanceStatus, default=ClearanceStatus.PENDING, nullable=False)
    renewal: Mapped[bool] = mapped_column(Boolean, default=False)
    referred_at: Mapped[datetime] = mapped_column(default=now_utc)
    due_at: Mapped[datetime] = mapped_column()
    # Optimistic check: every change bumps it; a form carrying an older version is refused.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The enrollment status to return to when a renewal is cleared (e.g. balance_paid).
    resume_status: Mapped[str | None] = mapped_column(String(40))

    decision: Mapped[str | None] = mapped_column(String(40))
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    # The licence the decision was made under, as it was at that moment.
    license_id: Mapped[int | None] = mapped_column(ForeignKey("provider_licenses.id", ondelete="SET NULL"))
    license_kind: Mapped[str | None] = mapped_column(String(32))
    license_number: Mapped[str | None] = mapped_column(String(64))
    license_state: Mapped[str | None] = mapped_column(String(8))
    license_expires_on: Mapped[date | None] = mapped_column(Date)
    attestation_name: Mapped[str | None] = mapped_column(String(200))
    attestation_text: Mapped[str | None] = mapped_column(Text)
    valid_until: Mapped[datetime | None] = mapped_column()
    conditions_enc: Mapped[str | None] = mapped_column(Text)
    conditions_shareable: Mapped[bool] = mapped_column(Boolean, default=False)
    rationale_enc: Mapped[str | None] = mapped_column(Text)
    participant_note_enc: Mapped[str | None] = mapped_column(Text)
    absolute_override: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_at: Mapped[datetime | None] = mapped_column()

    enrollment: Mapped[Enrollment] = relationship()
    intake: Mapped[Intake] = relationship()
    organization: Mapped[ProviderOrganization] = relationship()
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    license: Mapped[ProviderLicense | None] = relationship()
    messages: Mapped[list[InfoRequest]] = relationship(back_populates="clearance_request",
                                                       order_by="InfoRequest.id")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class InfoRequest(db.Model):
    """One message of the request-more-information thread between provider and participant."""

    __tablename__ = "info_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    clearance_request_id: Mapped[int] = mapped_column(
        ForeignKey("clearance_requests.id", ondelete="RESTRICT"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_role: Mapped[str] = mapped_column(String(32))
    body_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    clearance_request: Mapped[ClearanceRequest] = relationship(back_populates="messages")
    author: Mapped[User | None] = relationship()


class SafetyAlert(TimestampMixin, db.Model):
    """"Safety review needed" for the cohort's facilitators and the provider organisation. No details."""

    __tablename__ = "safety_alerts"
    __table_args__ = (
        Index("uq_safety_alerts_one_open", "enrollment_id", unique=True,
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("uq_safety_alerts_one_open_consult", "consultation_id", unique=True,
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        CheckConstraint("enrollment_id IS NOT NULL OR consultation_id IS NOT NULL", name="has_subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Raised by an intake (enrollment and cohort) or by a consult's pre-screen (consultation).
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="RESTRICT"), index=True)
    consultation_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultations.id", ondelete="RESTRICT"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_organizations.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = enum_column(AlertStatus, default=AlertStatus.OPEN, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(default=now_utc)
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # nobody acknowledged it in time: the organisation and the practice's contact were told
    escalated_at: Mapped[datetime | None] = mapped_column(index=True)

    enrollment: Mapped[Enrollment | None] = relationship()
    cohort: Mapped[Cohort | None] = relationship()
    consultation: Mapped[Consultation | None] = relationship()
    acknowledged_by: Mapped[User | None] = relationship()

    @property
    def person(self) -> tuple[str, str, str | None]:
        """Who to check in with: name, email, phone."""
        if self.enrollment is not None:
            p = self.enrollment.participant
            return p.name, p.email, p.phone
        c = self.consultation
        return c.guest_name, c.guest_email, c.guest_phone

    @property
    def context_label(self) -> str:
        if self.cohort is not None:
            return self.cohort.title
        return "free consult pre-screen"


# Intakes and clearance requests show (as statuses) on their cohort's roster.
roster_versions.track_enrollment_rows(Intake, ClearanceRequest)
