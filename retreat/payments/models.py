"""Payments: attempts (PaymentIntents), refunds, the append-only ledger, Stripe events seen,
discount codes and their redemptions, per-enrollment price overrides (scholarships), the refund
schedule of a cohort and installment plans.

Money is integer minor units plus an ISO-4217 currency. What an enrollment has paid and still
owes is *derived* from ``LedgerEntry`` rows (``retreat.payments.ledger``); nothing stores a
running total that could drift.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core import cache_versions
from retreat.core.crypto import encrypted_text
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db
from retreat.timeutil import now_utc


class PaymentKind(StrEnum):
    DEPOSIT = "deposit"
    BALANCE = "balance"
    INSTALLMENT = "installment"
    SCREENING_FEE = "screening_fee"  # with the application; counts toward the deposit (payments.screening)


class PaymentStatus(StrEnum):
    PENDING = "pending"  # PaymentIntent created (or being created), not paid yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundStatus(StrEnum):
    PENDING = "pending"  # decided here, not yet accepted by Stripe
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundKind(StrEnum):
    POLICY = "policy"  # withdrawal, by the cohort's schedule
    NOT_CLEARED = "not_cleared"
    PRACTICE_CANCELLED = "practice_cancelled"
    FINANCE = "finance"  # issued by finance staff with a reason
    SEAT_LOST = "seat_lost"  # paid after the hold expired and the cohort was full
    EXTERNAL = "external"  # issued in the Stripe dashboard; learnt from a webhook


class LedgerType(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    DISCOUNT = "discount"
    FEE = "fee"
    ADJUSTMENT = "adjustment"
    DISPUTE = "dispute"


# Entry types that are money actually received (+) or returned (-).
CASH_TYPES = (LedgerType.CHARGE.value, LedgerType.REFUND.value, LedgerType.DISPUTE.value)
# Entry types that change the price owed (discounts are negative).
PRICE_TYPES = (LedgerType.DISCOUNT.value, LedgerType.ADJUSTMENT.value)


class DiscountKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class RedemptionStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # healthcare-professional discount awaiting staff
    APPLIED = "applied"
    REJECTED = "rejected"


class Payment(TimestampMixin, db.Model):
    """One row per payment attempt (one PaymentIntent)."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_payments_enrollment_kind", "enrollment_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = enum_column(PaymentKind, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer)  # n in the idempotency key
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = enum_column(PaymentStatus, default=PaymentStatus.PENDING, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    installment_count: Mapped[int | None] = mapped_column(Integer)  # plan chosen with a balance payment
    failure_message: Mapped[str] = mapped_column(Text, default="")
    succeeded_at: Mapped[datetime | None] = mapped_column()
    disputed_at: Mapped[datetime | None] = mapped_column()

    enrollment: Mapped[Enrollment] = relationship()


class Refund(TimestampMixin, db.Model):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = enum_column(RefundKind, nullable=False)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = enum_column(RefundStatus, default=RefundStatus.PENDING, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    failure_message: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Finance's own note: shown in finance views and the audit log, never to the participant
    # (``reason`` is the message the participant sees).
    internal_note: Mapped[str | None] = mapped_column(Text)

    payment: Mapped[Payment] = relationship()
    requested_by: Mapped[User | None] = relationship()


class LedgerEntry(db.Model):
    """Append-only. Signed minor units: + money in (charge) or price up; - money out or price down."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("entry_type", "stripe_object_id", name="one_per_object"),
        Index("ix_ledger_entries_enrollment_type", "enrollment_id", "entry_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    entry_type: Mapped[str] = enum_column(LedgerType, nullable=False)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    # The Stripe object (pi_, re_, dp_) or our own object ("redemption:12") this entry records.
    stripe_object_id: Mapped[str] = mapped_column(String(80))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="RESTRICT"), index=True)
    memo: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class LedgerAppendOnly(RuntimeError):
    pass


@event.listens_for(LedgerEntry, "before_update")
def _ledger_no_update(mapper, connection, target):
    raise LedgerAppendOnly("ledger entries are append-only")


@event.listens_for(LedgerEntry, "before_delete")
def _ledger_no_delete(mapper, connection, target):
    raise LedgerAppendOnly("ledger entries are append-only")


class StripeEvent(db.Model):
    """Every Stripe event id processed, written in the same transaction as its effect."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(80), unique=True)
    event_type: Mapped[str] = mapped_column(String(80))
    object_id: Mapped[str | None] = mapped_column(String(80), index=True)
    outcome: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(default=now_utc)


class DiscountCode(TimestampMixin, db.Model):
    __tablename__ = "discount_codes"
    __table_args__ = (
        CheckConstraint("(kind = 'percent' AND percent > 0 AND percent <= 100) OR "
                        "(kind = 'fixed' AND amount_minor > 0)", name="value_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # stored upper case
    description: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = enum_column(DiscountKind, nullable=False)
    percent: Mapped[int | None] = mapped_column(Integer)
    amount_minor: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))  # required for fixed amounts
    max_uses: Mapped[int | None] = mapped_column(Integer)
    per_person_limit: Mapped[int | None] = mapped_column(Integer)  # redemptions per participant
    valid_from: Mapped[datetime | None] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)  # healthcare professional
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    cohort: Mapped[Cohort | None] = relationship()  # a single cohort (older codes)
    cohorts: Mapped[list[Cohort]] = relationship(secondary="discount_code_cohorts", order_by="Cohort.id")


discount_code_cohorts = db.Table(
    "discount_code_cohorts",
    db.Model.metadata,
    db.Column("code_id", ForeignKey("discount_codes.id", ondelete="CASCADE"), primary_key=True),
    db.Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class DiscountRedemption(TimestampMixin, db.Model):
    __tablename__ = "discount_redemptions"
    __table_args__ = (UniqueConstraint("enrollment_id", name="one_per_enrollment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("discount_codes.id", ondelete="RESTRICT"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"))
    status: Mapped[str] = enum_column(RedemptionStatus, nullable=False)
    amount_minor: Mapped[int] = mapped_column(Integer)  # the discount, computed when redeemed
    currency: Mapped[str] = mapped_column(String(3))
    # e.g. a licence number (not clinical, but personal): encrypted at rest, read as .evidence.
    evidence_enc: Mapped[str | None] = mapped_column(Text)
    evidence = encrypted_text("evidence_enc", doc="What the participant gave to qualify for the discount.")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column()

    code: Mapped[DiscountCode] = relationship()
    enrollment: Mapped[Enrollment] = relationship()


class PriceOverride(TimestampMixin, db.Model):
    """A scholarship: staff set a reduced price for one enrollment."""

    __tablename__ = "price_overrides"
    __table_args__ = (CheckConstraint("price_minor >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), unique=True)
    price_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, default="")
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class RefundRule(db.Model):
    """One step of a cohort's refund schedule: ``percent`` back until ``days_before`` the start."""

    __tablename__ = "refund_rules"
    __table_args__ = (
        UniqueConstraint("cohort_id", "days_before", name="one_per_step"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),
        CheckConstraint("days_before >= 0", name="days_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    days_before: Mapped[int] = mapped_column(Integer)
    percent: Mapped[int] = mapped_column(Integer)


class Installment(TimestampMixin, db.Model):
    """A due date of an enrollment's balance plan. Whether it is paid is derived from the ledger."""

    __tablename__ = "installments"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "plan_version", "seq", name="one_per_seq"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("seq >= 1 AND seq <= 6", name="seq_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    seq: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))


# (days before the start, percent refunded until then) when a cohort has no schedule of its own.
DEFAULT_SCHEDULE = ((60, 100), (30, 50))


@event.listens_for(Enrollment, "before_insert")
def _snapshot_refund_schedule(mapper, connection, target):
    """An enrollment keeps the refund schedule in force when it applied (``payments.refunds``)."""
    if target.refund_schedule is not None or target.cohort_id is None:
        return
    rows = connection.execute(select(RefundRule.days_before, RefundRule.percent).where(
        RefundRule.cohort_id == target.cohort_id)).all()
    steps = sorted(((int(d), int(p)) for d, p in rows), reverse=True) or list(DEFAULT_SCHEDULE)
    target.refund_schedule = [list(step) for step in steps]


@cache_versions.collect_changes
def _ledger_changes(session, changed: list, names: set[str]) -> None:
    """New ledger entries (append-only) change the finance reports."""
    if any(isinstance(obj, LedgerEntry) for obj in changed):
        names.add(cache_versions.FINANCE)


cache_versions.watch_bulk_writes(cache_versions.FINANCE, ["ledger_entries"])
