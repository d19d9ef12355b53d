"""Automatic installments: a participant's mandate (a card saved with a SetupIntent and the consent
they gave) and each off-session charge attempt of an installment.

An attempt row is written and committed under the enrollment's lock *before* Stripe is called, with
a unique (installment, attempt number) and a deterministic idempotency key, so two scheduler
processes never charge the same installment twice (``retreat.payments.autopay_charges``).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.cohorts.models import Enrollment
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.payments.models import Installment, Payment


class MandateStatus(StrEnum):
    PENDING = "pending"  # consent shown, card not saved yet (a SetupIntent may exist)
    ACTIVE = "active"  # card saved: installments are charged on their due dates
    REVOKED = "revoked"  # the person switched to paying by hand, or replaced the card
    UNUSABLE = "unusable"  # the card was removed in Stripe: nothing more is charged


class AttemptStatus(StrEnum):
    CHARGING = "charging"  # written before Stripe is called
    SUCCEEDED = "succeeded"  # Stripe charged (the ledger follows from the webhook)
    FAILED = "failed"  # declined: a retry may follow (``retry_on``)
    REQUIRES_ACTION = "requires_action"  # the bank asks the person to confirm
    NO_CARD = "no_card"  # the saved card is gone: the mandate is unusable


CONSENT_VERSION = "autopay-v1"


class AutopayMandate(TimestampMixin, db.Model):
    __tablename__ = "autopay_mandates"
    __table_args__ = (Index("ix_autopay_mandates_enrollment_status", "enrollment_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = enum_column(MandateStatus, default=MandateStatus.PENDING, nullable=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(80))
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(80))
    card_brand: Mapped[str] = mapped_column(String(40), default="")
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    card_exp_month: Mapped[int | None] = mapped_column(Integer)
    card_exp_year: Mapped[int | None] = mapped_column(Integer)
    consent_version: Mapped[str] = mapped_column(String(40), default=CONSENT_VERSION)
    consent_text: Mapped[str] = mapped_column(Text, default="")  # what the person agreed to, as shown
    activated_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str] = mapped_column(String(200), default="")

    enrollment: Mapped[Enrollment] = relationship()

    @property
    def card_label(self) -> str:
        if not self.card_last4:
            return "your card"
        brand = (self.card_brand or "card").capitalize()
        return f"{brand} ending {self.card_last4}"

    @property
    def card_expiry(self) -> str:
        if not self.card_exp_month or not self.card_exp_year:
            return ""
        return f"{self.card_exp_month:02d}/{self.card_exp_year}"


class AutopayAttempt(TimestampMixin, db.Model):
    __tablename__ = "autopay_attempts"
    __table_args__ = (UniqueConstraint("installment_id", "attempt_no", name="one_per_attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mandate_id: Mapped[int] = mapped_column(ForeignKey("autopay_mandates.id", ondelete="RESTRICT"), index=True)
    installment_id: Mapped[int] = mapped_column(ForeignKey("installments.id", ondelete="RESTRICT"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), unique=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = enum_column(AttemptStatus, default=AttemptStatus.CHARGING, nullable=False)
    charge_on: Mapped[date] = mapped_column(Date)  # the cohort-local day it was made for
    retry_on: Mapped[date | None] = mapped_column(Date)  # the next attempt's day, after a decline
    failure_message: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column()

    mandate: Mapped[AutopayMandate] = relationship()
    installment: Mapped[Installment] = relationship()
    payment: Mapped[Payment] = relationship()
