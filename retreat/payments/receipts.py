"""Receipts: an email for each charge and refund the ledger records, once per Stripe object.

A receipt says what moved, when (in the participant's time zone), the reference Stripe knows it
by, and where the enrollment stands afterwards (paid so far, balance left, from ``pricing.quote``;
for an enrollment that has exited: paid and refunded in all, nothing owed).
The dedupe key (``receipt-charge-<payment>``, ``receipt-refund-<refund>``) makes a replayed
webhook queue nothing new. Each email names the receipt or credit note the ledger issued for the
money (``payments.documents``) and links to its page, which needs the participant to sign in (no
token in the URL).
"""

from __future__ import annotations

from datetime import datetime

from retreat.cohorts.models import Enrollment
from retreat.core import urls
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.money import format_money
from retreat.payments import documents, pricing
from retreat.payments.document_models import FinanceDocument
from retreat.payments.models import Payment, Refund
from retreat.timeutil import format_local


def _standing(q: pricing.Quote) -> dict:
    """Where the enrollment stands after the money moved. A closed one (withdrawn, not cleared,
    cancelled...) owes nothing: it shows what was paid and refunded in all, and no balance."""
    if q.closed:
        return {"closed": True, "paid": q.fmt(q.received), "refunded": q.fmt(q.refunded), "balance": ""}
    return {"closed": False, "paid": q.fmt(q.paid), "refunded": "", "balance": q.fmt(q.owed)}


def _document_link(enr: Enrollment, doc: FinanceDocument | None) -> dict:
    if doc is None:
        return {"document_number": "", "document_title": "", "document_url": ""}
    return {"document_number": doc.number, "document_title": doc.title,
            "document_url": f"{urls.base_url()}/me/payments/{enr.id}/documents/{doc.id}"}


def _send(enr: Enrollment, *, template: str, dedupe_key: str, amount: int, currency: str, reference: str,
          now: datetime, document: FinanceDocument | None = None, **details) -> None:
    q = pricing.quote(enr)
    person = enr.participant
    details.update(_document_link(enr, document))
    outbox.enqueue(template=template, dedupe_key=dedupe_key, to_user=person, now=now,
                   context={"participant_name": person.name, "retreat_title": enr.cohort.retreat.title,
                            "cohort_title": enr.cohort.title, **details,
                            "amount": format_money(amount, currency),
                            "date": format_local(now, person.tz or "UTC"),
                            **_standing(q),
                            "reference": reference, "url": f"{urls.base_url()}/me/payments/{enr.id}"})


def charge(payment: Payment, amount: int, *, now: datetime) -> None:
    """The receipt of a charge of ``amount`` on ``payment``."""
    _send(payment.enrollment, template="receipt_charge", dedupe_key=f"receipt-charge-{payment.id}", amount=amount,
          currency=payment.currency, reference=payment.stripe_payment_intent_id or payment.idempotency_key,
          now=now, kind=payment.kind.replace("_", " "), document=documents.for_payment(payment.id))


def refund(refund: Refund, *, now: datetime) -> None:
    """The receipt of a refund (with its reason)."""
    _send(db.session.get(Enrollment, refund.enrollment_id), template="receipt_refund",
          dedupe_key=f"receipt-refund-{refund.id}", amount=refund.amount_minor, currency=refund.currency,
          reference=refund.stripe_refund_id or refund.idempotency_key, now=now, reason=refund.reason[:300],
          document=documents.for_refund(refund.id))
