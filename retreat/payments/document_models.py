"""Finance documents: a numbered receipt for every charge and credit note for every refund the
ledger records, and the counters their numbers come from.

A document is written once, in the same transaction as its ledger entry, and never changes: it
keeps the practice's legal details as they were when it was issued (a snapshot), so a later
change of address does not rewrite old receipts. Numbers are gapless per series: see
``retreat.payments.documents``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.cohorts.models import Enrollment
from retreat.database import enum_column
from retreat.extensions import db
from retreat.payments.models import LedgerEntry, Payment, Refund
from retreat.timeutil import now_utc


class DocumentKind(StrEnum):
    RECEIPT = "receipt"  # a charge (money in)
    CREDIT_NOTE = "credit_note"  # a refund (money back)


# One series per kind, with the prefix its numbers carry: R-2026-000001, C-2026-000001.
SERIES = {DocumentKind.RECEIPT: "R", DocumentKind.CREDIT_NOTE: "C"}


class DocumentCounter(db.Model):
    """The last number issued in a series. Locked (``core.locking``) by whoever issues the next."""

    __tablename__ = "document_counters"
    __table_args__ = (CheckConstraint("last_number >= 0", name="last_number_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(8), unique=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class FinanceDocument(db.Model):
    """A receipt or credit note: one per charge or refund ledger entry, numbered when recorded."""

    __tablename__ = "finance_documents"
    __table_args__ = (
        UniqueConstraint("series", "seq", name="one_per_number"),
        CheckConstraint("seq > 0", name="seq_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = enum_column(DocumentKind, nullable=False)
    series: Mapped[str] = mapped_column(String(8))
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    ledger_entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id", ondelete="RESTRICT"), unique=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="RESTRICT"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="RESTRICT"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)  # positive: what was paid or given back
    currency: Mapped[str] = mapped_column(String(3))
    issued_at: Mapped[datetime] = mapped_column(default=now_utc)
    # The practice's legal details when the document was issued.
    legal_name: Mapped[str] = mapped_column(String(200), default="")
    legal_address: Mapped[str] = mapped_column(Text, default="")
    tax_id: Mapped[str] = mapped_column(String(60), default="")
    footer: Mapped[str] = mapped_column(Text, default="")

    ledger_entry: Mapped[LedgerEntry] = relationship()
    enrollment: Mapped[Enrollment] = relationship()
    payment: Mapped[Payment | None] = relationship()
    refund: Mapped[Refund | None] = relationship()

    @property
    def title(self) -> str:
        return "Receipt" if self.kind == DocumentKind.RECEIPT else "Credit note"


class DocumentImmutable(RuntimeError):
    pass


@event.listens_for(FinanceDocument, "before_update")
def _no_update(mapper, connection, target):
    raise DocumentImmutable("finance documents are never changed once issued")


@event.listens_for(FinanceDocument, "before_delete")
def _no_delete(mapper, connection, target):
    raise DocumentImmutable("finance documents are never deleted")
