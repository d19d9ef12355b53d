"""Stripe reconciliation: saved runs and what each found.

A ``ReconciliationRun`` pages through Stripe (balance transactions, charges, refunds, payouts)
created in a window and matches every money object to the ledger by its Stripe object id (and the
enrollment in the PaymentIntent metadata). Each object becomes one ``ReconciliationItem``:

* ``matched``: in Stripe and in the ledger, same amount and currency;
* ``missing_in_ledger``: in Stripe but not in the ledger (a missed webhook), repairable;
* ``missing_in_stripe``: in the ledger but Stripe does not know the object;
* ``mismatch``: in both, amount, currency or enrollment differ;
* ``dispute``: a dispute (chargeback) balance transaction, with the ledger's view of it.

``cursor`` is the run's high-water mark: everything created before it was reconciled with no
open problem, so the next run starts there. ``active_slot`` is ``True`` only while a run is
queued or running; being unique, it makes "a second run while one is queued" impossible.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.accounts.models import User
from retreat.cohorts.models import Cohort, Enrollment
from retreat.database import enum_column
from retreat.extensions import db
from retreat.timeutil import now_utc


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ItemCategory(StrEnum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_IN_STRIPE = "missing_in_stripe"
    MISMATCH = "mismatch"
    DISPUTE = "dispute"


class ItemKind(StrEnum):
    """What the Stripe object is, named like the ledger entry type it should match."""

    CHARGE = "charge"
    REFUND = "refund"
    FEE = "fee"
    DISPUTE = "dispute"


class ReconciliationRun(db.Model):
    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = enum_column(RunStatus, default=RunStatus.QUEUED, nullable=False)
    active_slot: Mapped[bool | None] = mapped_column(Boolean, unique=True)  # True while queued/running
    since: Mapped[datetime | None] = mapped_column()  # Stripe objects created at or after (None: all)
    until: Mapped[datetime | None] = mapped_column()  # ... and at or before (None: when the run started)
    cursor: Mapped[datetime | None] = mapped_column()  # high-water mark: where the next run starts
    objects_seen: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    missing_in_ledger_count: Mapped[int] = mapped_column(Integer, default=0)
    missing_in_stripe_count: Mapped[int] = mapped_column(Integer, default=0)
    mismatch_count: Mapped[int] = mapped_column(Integer, default=0)
    dispute_count: Mapped[int] = mapped_column(Integer, default=0)
    payouts_count: Mapped[int] = mapped_column(Integer, default=0)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)  # an estimate, refined as it runs
    phase: Mapped[str] = mapped_column(String(40), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(default=now_utc)
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    requested_by: Mapped[User | None] = relationship()

    @property
    def is_active(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def open_count(self) -> int:
        return self.missing_in_ledger_count + self.missing_in_stripe_count + self.mismatch_count

    def count_of(self, category: str) -> int:
        return int(getattr(self, f"{category}_count"))


class ReconciliationItem(db.Model):
    __tablename__ = "reconciliation_items"
    __table_args__ = (
        Index("ix_reconciliation_items_run_category", "run_id", "category"),
        Index("ix_reconciliation_items_run_key", "run_id", "match_key"),
        Index("ix_reconciliation_items_run_ledger", "run_id", "ledger_entry_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"))
    category: Mapped[str] = enum_column(ItemCategory, nullable=False)
    kind: Mapped[str] = enum_column(ItemKind, nullable=False)
    # "<kind>:<ledger object id>", the same object in every run (compare joins on it)
    match_key: Mapped[str] = mapped_column(String(100))
    stripe_object_id: Mapped[str] = mapped_column(String(80))  # ch_, re_, txn_ (or the ledger's id)
    stripe_type: Mapped[str] = mapped_column(String(40), default="")  # e.g. balance transaction type
    payment_intent_id: Mapped[str | None] = mapped_column(String(80))
    stripe_created: Mapped[datetime | None] = mapped_column()
    stripe_amount_minor: Mapped[int | None] = mapped_column(Integer)
    stripe_currency: Mapped[str | None] = mapped_column(String(3))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id", ondelete="SET NULL"))
    ledger_amount_minor: Mapped[int | None] = mapped_column(Integer)
    ledger_currency: Mapped[str | None] = mapped_column(String(3))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(String(300), default="")
    repairable: Mapped[bool] = mapped_column(Boolean, default=False)
    is_open: Mapped[bool] = mapped_column(Boolean, default=False)  # a problem nobody resolved yet
    repaired_at: Mapped[datetime | None] = mapped_column()
    repaired_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    run: Mapped[ReconciliationRun] = relationship()
    repaired_by: Mapped[User | None] = relationship()
    enrollment: Mapped[Enrollment | None] = relationship()
    cohort: Mapped[Cohort | None] = relationship()
