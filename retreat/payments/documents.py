"""Numbered finance documents: a receipt for every charge, a credit note for every refund.

Numbering (issue #18 item 2). Two series, one per kind: receipts ``R-<year>-<n>`` and credit notes
``C-<year>-<n>`` (n six digits, zero-padded). Each series counts 1, 2, 3... for the practice and
never restarts: the year is the year of issue, for people, and is not part of the sequence. So a
series has no gap and no repeat:

* a number is taken when the ledger records the charge or refund (``ledger.record``, from the
  Stripe webhook or the return page), in the same transaction as the ledger entry and the
  document row, never when a document is viewed;
* taking one locks the series' counter row (``SELECT ... FOR UPDATE`` through ``core.locking``,
  ranked last in ``LOCK_ORDER``), increments it and writes the document; concurrent payments
  queue on that row, so they get consecutive numbers;
* a transaction that rolls back rolls the counter back with it: no number is consumed;
* ``UNIQUE (series, seq)`` and ``UNIQUE (number)`` back this up in the database, and one document
  per ledger entry (``UNIQUE (ledger_entry_id)``) makes a replayed webhook issue nothing new.

Payments recorded before documents existed get theirs from ``flask finance issue-missing-documents``
(``issue_missing``), in ledger order, idempotently.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from retreat.core import locking
from retreat.extensions import db
from retreat.payments import legal
from retreat.payments.document_models import SERIES, DocumentCounter, DocumentKind, FinanceDocument
from retreat.payments.models import LedgerEntry, LedgerType

KIND_OF_ENTRY = {LedgerType.CHARGE.value: DocumentKind.RECEIPT, LedgerType.REFUND.value: DocumentKind.CREDIT_NOTE}


def format_number(series: str, seq: int, issued_at: datetime) -> str:
    return f"{series}-{issued_at.year}-{seq:06d}"


def _counter(series: str) -> DocumentCounter:
    """The series' counter row, locked (created at 0 the first time, safely under concurrency)."""
    counter = locking.lock(DocumentCounter, series, column=DocumentCounter.series)
    if counter is not None:
        return counter
    try:
        with db.session.begin_nested():
            db.session.add(DocumentCounter(series=series, last_number=0))
            db.session.flush()
    except IntegrityError:  # another transaction created it first: lock theirs
        pass
    return locking.lock(DocumentCounter, series, column=DocumentCounter.series)


def next_number(series: str) -> int:
    """Take the next number of ``series`` (locks its counter until the transaction ends)."""
    counter = _counter(series)
    counter.last_number += 1
    db.session.flush()
    return counter.last_number


def for_entry(entry_id: int) -> FinanceDocument | None:
    return db.session.scalar(select(FinanceDocument).where(FinanceDocument.ledger_entry_id == entry_id))


def issue(entry: LedgerEntry, *, now: datetime) -> FinanceDocument | None:
    """The document of a charge or refund ledger entry, issued (numbered) now if it has none.

    Other entry types (fees, discounts, disputes, adjustments) get no document: None."""
    kind = KIND_OF_ENTRY.get(entry.entry_type)
    if kind is None:
        return None
    existing = for_entry(entry.id)
    if existing is not None:
        return existing
    series = SERIES[kind]
    seq = next_number(series)
    details = legal.current()
    doc = FinanceDocument(kind=kind.value, series=series, seq=seq, number=format_number(series, seq, now),
                          ledger_entry_id=entry.id, enrollment_id=entry.enrollment_id, payment_id=entry.payment_id,
                          refund_id=entry.refund_id, amount_minor=abs(int(entry.amount_minor)),
                          currency=entry.currency, issued_at=now, legal_name=details.legal_name,
                          legal_address=details.address, tax_id=details.tax_id, footer=details.footer)
    db.session.add(doc)
    db.session.flush()
    return doc


def missing_entries():
    """Charge and refund ledger entries without a document, in the order they were recorded."""
    has_doc = select(FinanceDocument.id).where(FinanceDocument.ledger_entry_id == LedgerEntry.id).exists()
    return (select(LedgerEntry).where(LedgerEntry.entry_type.in_(tuple(KIND_OF_ENTRY)), ~has_doc)
            .order_by(LedgerEntry.created_at, LedgerEntry.id))


def issue_missing(*, now: datetime, batch: int = 200) -> int:
    """Number every charge and refund recorded without a document, in ledger order. Idempotent:
    a second run issues nothing. Commits after each batch; returns how many were issued."""
    issued = 0
    while True:
        entries = list(db.session.scalars(missing_entries().limit(batch)))
        if not entries:
            return issued
        for entry in entries:
            if issue(entry, now=now) is not None:
                issued += 1
        db.session.commit()


def of_enrollment(enrollment_id: int) -> list[FinanceDocument]:
    return list(db.session.scalars(select(FinanceDocument).where(FinanceDocument.enrollment_id == enrollment_id)
                                   .order_by(FinanceDocument.issued_at, FinanceDocument.id)))


def for_payment(payment_id: int) -> FinanceDocument | None:
    return db.session.scalar(select(FinanceDocument).where(FinanceDocument.payment_id == payment_id,
                                                           FinanceDocument.kind == DocumentKind.RECEIPT.value)
                             .order_by(FinanceDocument.id).limit(1))


def for_refund(refund_id: int) -> FinanceDocument | None:
    return db.session.scalar(select(FinanceDocument).where(FinanceDocument.refund_id == refund_id,
                                                           FinanceDocument.kind == DocumentKind.CREDIT_NOTE.value)
                             .order_by(FinanceDocument.id).limit(1))
