"""An enrollment's statement: price, scholarship, discounts, payments, refunds and the balance.

Derived, never stored: the figures are ``pricing.quote``'s (the same as the payments page and the
balances finance sees), the lines are the ledger's (``ledger.entries``) with the receipt or
credit-note number of each charge and refund. Statements are not numbered documents, so they show
the practice's current legal details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from retreat.cohorts.models import Enrollment
from retreat.payments import documents, ledger, legal, pricing, screening
from retreat.payments.models import LedgerType

_LABELS = {LedgerType.CHARGE.value: "Payment", LedgerType.REFUND.value: "Refund",
           LedgerType.DISPUTE.value: "Dispute", LedgerType.DISCOUNT.value: "Discount",
           LedgerType.ADJUSTMENT.value: "Price adjustment"}
SCREENING_FEE_LABEL = "Screening fee (credited against the price)"


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    label: str
    amount_minor: int  # signed as in the ledger
    document_number: str = ""
    document_id: int | None = None
    memo: str = ""


@dataclass(frozen=True)
class Statement:
    enrollment: Enrollment
    quote: pricing.Quote
    legal: legal.LegalDetails
    generated_at: datetime
    price_lines: list[StatementLine] = field(default_factory=list)  # discounts and adjustments
    money_lines: list[StatementLine] = field(default_factory=list)  # payments, refunds, disputes

    @property
    def scholarship(self) -> int:
        """What a scholarship takes off the list price (positive), 0 without one."""
        return max(0, self.quote.list_price - self.quote.base_price)


def build(enr: Enrollment, *, now: datetime) -> Statement:
    docs = {d.ledger_entry_id: d for d in documents.of_enrollment(enr.id)}
    price_lines, money_lines = [], []
    fee_payments = screening.fee_payment_ids(enr.id)
    for e in ledger.entries(enr.id):
        label = _LABELS.get(e.entry_type)
        if e.entry_type == LedgerType.CHARGE.value and e.payment_id in fee_payments:
            label = SCREENING_FEE_LABEL
        if label is None:  # Stripe fees are the practice's cost, not the participant's
            continue
        doc = docs.get(e.id)
        line = StatementLine(at=e.created_at, label=label, amount_minor=e.amount_minor,
                             document_number=doc.number if doc else "", document_id=doc.id if doc else None,
                             memo=e.memo)
        (price_lines if e.entry_type in (LedgerType.DISCOUNT.value, LedgerType.ADJUSTMENT.value)
         else money_lines).append(line)
    return Statement(enrollment=enr, quote=pricing.quote(enr), legal=legal.current(), generated_at=now,
                     price_lines=price_lines, money_lines=money_lines)
