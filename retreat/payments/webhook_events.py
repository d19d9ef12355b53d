"""The integrators' payment events (``messaging.webhooks``): amounts, ids and the payer; no card data."""

from __future__ import annotations

from datetime import datetime

from retreat.messaging import webhooks
from retreat.payments.models import Payment, Refund


def _payer(enrollment) -> dict:
    person = enrollment.participant
    return {"enrollment_id": enrollment.id, "cohort_id": enrollment.cohort_id, "participant_id": enrollment.participant_id,
            "participant_name": person.name if person else None, "participant_email": person.email if person else None}


def payment_succeeded(payment: Payment, amount_minor: int, *, now: datetime) -> None:
    webhooks.emit("payment.succeeded", {
        "payment_id": payment.id, "kind": payment.kind, "amount_minor": int(amount_minor),
        "currency": payment.currency, **_payer(payment.enrollment)}, now=now)


def refund_succeeded(refund: Refund, *, now: datetime) -> None:
    webhooks.emit("refund.succeeded", {
        "refund_id": refund.id, "payment_id": refund.payment_id, "kind": refund.kind,
        "amount_minor": int(refund.amount_minor), "currency": refund.currency, **_payer(refund.payment.enrollment)}, now=now)
