"""Disputes (chargebacks) move money: what Stripe withdrew and reinstated is in the ledger.

A dispute is re-fetched from Stripe on every ``charge.dispute.*`` event and *all* its balance
transactions are applied, whichever event arrived: funds withdrawn is a negative ``dispute``
entry, funds reinstated a positive one, each keyed by its balance transaction id (``txn_...``),
and the dispute fee (Stripe's ``fee`` on the same balance transaction) a ``fee`` entry keyed by
the same id. Duplicated, late or reordered events therefore converge on the same ledger.

``paid`` = charges - refunds - withdrawn + reinstated (``ledger.paid``); fees are excluded.
"""

from __future__ import annotations

from datetime import datetime

from retreat import audit
from retreat.payments import ledger
from retreat.payments.models import LedgerType, Payment


def _amount(txn: dict, dispute: dict, currency: str) -> int:
    """The entry's amount in the payment's currency: the balance transaction's own amount when
    it settled in that currency, else the disputed amount with the transaction's sign."""
    if txn["currency"] == currency or not dispute.get("amount"):
        return int(txn["amount"])
    return int(dispute["amount"]) if txn["amount"] > 0 else -int(dispute["amount"])


def apply(payment: Payment, dispute: dict, *, now: datetime) -> int:
    """Flag the payment as disputed and record the dispute's money movements. Idempotent.
    Returns the number of new ledger entries."""
    created_count = 0
    if payment.disputed_at is None:
        payment.disputed_at = now
        audit.record("payments.dispute_opened", object_type="payment", object_id=payment.id, now=now,
                     details={"dispute": dispute["id"], "amount_minor": dispute.get("amount")})
    for txn in dispute.get("balance_transactions") or []:
        if not txn.get("id") or not int(txn.get("amount") or 0):
            continue
        amount = _amount(txn, dispute, payment.currency)
        what = "withdrawn" if amount < 0 else "reinstated"
        _, created = ledger.record(enrollment_id=payment.enrollment_id, entry_type=LedgerType.DISPUTE,
                                   amount_minor=amount, currency=payment.currency, object_id=txn["id"],
                                   payment_id=payment.id, now=now, memo=f"Dispute {dispute['id']}: funds {what}")
        if int(txn.get("fee") or 0):
            _, fee_created = ledger.record(enrollment_id=payment.enrollment_id, entry_type=LedgerType.FEE,
                                           amount_minor=-int(txn["fee"]), currency=txn["currency"] or payment.currency,
                                           object_id=txn["id"], payment_id=payment.id, now=now,
                                           memo=f"Dispute fee {dispute['id']}")
            created_count += int(fee_created)
        if created:
            created_count += 1
            audit.record(f"payments.dispute_funds_{what}", object_type="payment", object_id=payment.id, now=now,
                         details={"dispute": dispute["id"], "balance_transaction": txn["id"], "amount_minor": amount,
                                  "currency": payment.currency})
    return created_count


def disputed_rows() -> list[dict]:
    """Finance: every disputed payment with the money the dispute moved (withdrawn is negative,
    reinstated positive) and what it cost in dispute fees. Two queries."""
    from sqlalchemy import case, func, select

    from retreat.extensions import db
    from retreat.payments.models import LedgerEntry

    pays = list(db.session.scalars(select(Payment).where(Payment.disputed_at.is_not(None))
                                   .order_by(Payment.disputed_at.desc(), Payment.id.desc())))
    if not pays:
        return []
    is_dispute = LedgerEntry.entry_type == LedgerType.DISPUTE.value
    dispute_txns = select(LedgerEntry.stripe_object_id).where(is_dispute).scalar_subquery()
    is_dispute_fee = (LedgerEntry.entry_type == LedgerType.FEE.value) & LedgerEntry.stripe_object_id.in_(dispute_txns)
    sums = {pid: (int(moved or 0), int(fees or 0)) for pid, moved, fees in db.session.execute(
        select(LedgerEntry.payment_id,
               func.sum(case((is_dispute, LedgerEntry.amount_minor), else_=0)),
               func.sum(case((is_dispute_fee, LedgerEntry.amount_minor), else_=0)))
        .where(LedgerEntry.payment_id.in_([p.id for p in pays]))
        .group_by(LedgerEntry.payment_id))}
    return [{"payment": p, "moved": sums.get(p.id, (0, 0))[0], "fees": sums.get(p.id, (0, 0))[1]} for p in pays]
