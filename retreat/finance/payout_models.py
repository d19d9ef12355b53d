"""Stripe payouts and the balance transactions each one settled.

A ``Payout`` mirrors a Stripe payout (``po_...``); its ``PayoutLine`` rows are the balance
transactions (``txn_...``) it paid out (charges, refunds, dispute adjustments, fees ...), each
linked, when known, to our payment or refund, the ledger entry it settles, and the enrollment and
cohort. Rows are written only by ``retreat.finance.payouts.sync`` (idempotent: unique Stripe
ids). Totals are derived: the sum of the lines' nets should equal the payout's amount.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.cohorts.models import Cohort, Enrollment
from retreat.database import enum_column
from retreat.extensions import db
from retreat.timeutil import now_utc


class PayoutLineKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    DISPUTE = "dispute"
    FEE = "fee"
    ADJUSTMENT = "adjustment"
    OTHER = "other"


class Payout(db.Model):
    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_payout_id: Mapped[str] = mapped_column(String(80), unique=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # Stripe's: paid, pending, in_transit, canceled, failed
    arrival_date: Mapped[date] = mapped_column(Date, index=True)
    stripe_created_at: Mapped[datetime] = mapped_column(index=True)
    synced_at: Mapped[datetime] = mapped_column(default=now_utc)

    lines: Mapped[list[PayoutLine]] = relationship(back_populates="payout", order_by="PayoutLine.id")


class PayoutLine(db.Model):
    __tablename__ = "payout_lines"
    __table_args__ = (Index("ix_payout_lines_payout_kind", "payout_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id", ondelete="CASCADE"))
    balance_transaction_id: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = enum_column(PayoutLineKind, nullable=False)
    stripe_type: Mapped[str] = mapped_column(String(40))  # the balance transaction's own type
    source_id: Mapped[str | None] = mapped_column(String(80))  # ch_, re_, dp_ ...
    gross_minor: Mapped[int] = mapped_column(Integer)
    fee_minor: Mapped[int] = mapped_column(Integer)  # what Stripe took (positive), as Stripe reports it
    net_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    stripe_created_at: Mapped[datetime] = mapped_column()
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="SET NULL"), index=True)
    # The ledger entry of the money itself (charge, refund or dispute); fee entries share the id.
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id", ondelete="SET NULL"),
                                                        unique=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"), index=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"), index=True)

    payout: Mapped[Payout] = relationship(back_populates="lines")
    enrollment: Mapped[Enrollment | None] = relationship()
    cohort: Mapped[Cohort | None] = relationship()
