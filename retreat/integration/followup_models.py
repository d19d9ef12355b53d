"""Follow-ups after the retreat: check-ins and outcome surveys sent from the integration plan.

``FollowUp``: one per (enrollment, kind). Created and moved by ``retreat.integration.followups`` from
the cohort's integration plan; its email goes through the outbox under ``outbox_dedupe_key`` (so it
is never sent twice). The link in that email carries a signed token naming the follow-up and its
``token_nonce``; the link stops working at ``expires_at`` or once answered.

``CheckInResponse``: the answers to a 24 h / 72 h check-in. Clinical: everything lives in
``answers_enc`` (sealed JSON), never in plain columns, emails or logs.

``IntegrationAlert``: a facilitator must follow up with the participant. The row says only the
category (reach out, low score, PHQ-9 item 9, no response to the 72 h check-in), never the answers.
``escalated_at``: nobody acknowledged it in time and the organisation and the practice's contact
were told (``retreat.integration.escalation``).

``Discharge``: when the provider signed a participant off the cohort's last dosing session
(``signals.participant_discharged``); the 24 h and 72 h check-ins count from it.
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


class FollowUpKind(StrEnum):
    CHECKIN_24H = "checkin_24h"
    CHECKIN_72H = "checkin_72h"
    SURVEY_POST = "survey_post"
    SURVEY_MONTH_1 = "survey_month_1"
    SURVEY_MONTH_3 = "survey_month_3"


CHECKIN_KINDS = frozenset({FollowUpKind.CHECKIN_24H.value, FollowUpKind.CHECKIN_72H.value})
SURVEY_TIMEPOINTS = {
    FollowUpKind.SURVEY_POST.value: "post",
    FollowUpKind.SURVEY_MONTH_1.value: "month_1",
    FollowUpKind.SURVEY_MONTH_3.value: "month_3",
}


class FollowUpStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class AlertReason(StrEnum):
    REACH_OUT = "reach_out"
    LOW_SCORE = "low_score"
    PHQ9_ITEM9 = "phq9_item9"
    NO_RESPONSE_72H = "no_response_72h"


class FollowUp(TimestampMixin, db.Model):
    __tablename__ = "follow_ups"
    __table_args__ = (UniqueConstraint("enrollment_id", "kind", name="follow_up_one_per_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = enum_column(FollowUpKind, nullable=False)
    due_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = enum_column(FollowUpStatus, default=FollowUpStatus.SCHEDULED, nullable=False)
    outbox_dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    token_nonce: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    cancelled_reason: Mapped[str | None] = mapped_column(String(200))

    enrollment: Mapped[Enrollment] = relationship()

    @property
    def is_checkin(self) -> bool:
        return self.kind in CHECKIN_KINDS


class CheckInResponse(TimestampMixin, db.Model):
    __tablename__ = "checkin_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    follow_up_id: Mapped[int] = mapped_column(ForeignKey("follow_ups.id", ondelete="CASCADE"), unique=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    answers_enc: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column()

    follow_up: Mapped[FollowUp] = relationship()


class IntegrationAlert(TimestampMixin, db.Model):
    __tablename__ = "integration_alerts"
    __table_args__ = (UniqueConstraint("enrollment_id", "reason", "follow_up_id", name="integration_alert_once_per_reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    follow_up_id: Mapped[int] = mapped_column(ForeignKey("follow_ups.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = enum_column(AlertReason, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    escalated_at: Mapped[datetime | None] = mapped_column(index=True)

    enrollment: Mapped[Enrollment] = relationship()
    cohort: Mapped[Cohort] = relationship()
    follow_up: Mapped[FollowUp] = relationship()
    acknowledged_by: Mapped[User | None] = relationship()


class Discharge(TimestampMixin, db.Model):
    """A participant's discharge from the cohort's last dosing session: who and when, nothing clinical."""

    __tablename__ = "followup_discharges"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), unique=True)
    cohort_session_id: Mapped[int] = mapped_column(ForeignKey("cohort_sessions.id", ondelete="CASCADE"), index=True)
    discharged_at: Mapped[datetime] = mapped_column()
