"""The ledger: append-only signed entries; the single source of what an enrollment paid and owes.

Sign convention (minor units): a charge is +, a refund or a dispute is - (money in / out); a
discount is - and an adjustment is +/- (the price owed). Each entry names the Stripe object (or our
own object, e.g. ``redemption:12``) it records, unique per entry type, so recording the same
charge or refund twice is impossible, whatever order or how often webhooks arrive.

Recording a charge or a refund also issues its numbered receipt or credit note
(``retreat.payments.documents``), in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from retreat.extensions import db
from retreat.payments import documents
from retreat.payments.models import CASH_TYPES, PRICE_TYPES, LedgerEntry, LedgerType


def record(*, enrollment_id: int, entry_type: LedgerType, amount_minor: int, currency: str, object_id: str,
           now: datetime, payment_id: int | None = None, refund_id: int | None = None,
           memo: str = "") -> tuple[LedgerEntry, bool]:
    """Append one entry; (existing, False) when this object is already in the ledger."""
    existing = find(entry_type, object_id)
    if existing is not None:
        return existing, False
    entry = LedgerEntry(enrollment_id=enrollment_id, entry_type=entry_type.value, amount_minor=int(amount_minor),
                        currency=currency.upper(), stripe_object_id=object_id, payment_id=payment_id,
                        refund_id=refund_id, memo=memo[:300], created_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(entry)
            db.session.flush()
    except IntegrityError:  # a concurrent writer recorded it first
        existing = find(entry_type, object_id)
        if existing is None:
            raise
        return existing, False
    documents.issue(entry, now=now)  # a receipt or credit note for a charge or refund; nothing otherwise
    return entry, True


def find(entry_type: LedgerType, object_id: str) -> LedgerEntry | None:
    return db.session.scalar(select(LedgerEntry).where(LedgerEntry.entry_type == entry_type.value,
                                                       LedgerEntry.stripe_object_id == object_id))


def _sum(enrollment_id: int, types, *, payment_id: int | None = None) -> int:
    stmt = select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
        LedgerEntry.enrollment_id == enrollment_id, LedgerEntry.entry_type.in_(types))
    if payment_id is not None:
        stmt = stmt.where(LedgerEntry.payment_id == payment_id)
    return int(db.session.scalar(stmt) or 0)


def paid(enrollment_id: int) -> int:
    """Money received net of refunds and disputes."""
    return _sum(enrollment_id, CASH_TYPES)


def refunded(enrollment_id: int) -> int:
    """Money given back by refunds (positive)."""
    return -_sum(enrollment_id, (LedgerType.REFUND.value,))


def price_adjustments(enrollment_id: int) -> int:
    """Discounts (negative) and adjustments to the price owed."""
    return _sum(enrollment_id, PRICE_TYPES)


def net_paid_on_payment(enrollment_id: int, payment_id: int) -> int:
    return _sum(enrollment_id, CASH_TYPES, payment_id=payment_id)


def entries(enrollment_id: int) -> list[LedgerEntry]:
    return list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.enrollment_id == enrollment_id)
                                   .order_by(LedgerEntry.created_at, LedgerEntry.id)))
