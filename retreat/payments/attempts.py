"""Payment attempts: finding the row a Stripe PaymentIntent belongs to, and locking it in order;
the failed attempts nobody recovered (finance's home).

Used by checkout (applying a PaymentIntent), refunds (a refund names its PaymentIntent) and the
Stripe events router, so none of them imports another for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import aliased, joinedload

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core import locking
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db
from retreat.payments.models import Payment, PaymentStatus


def find_payment_for_intent(pi: dict, *, lock: bool = True) -> Payment | None:
    stmt = select(Payment).where(Payment.stripe_payment_intent_id == pi["id"])
    payment = db.session.scalar(stmt)
    if payment is None:
        # Created by us but the id never got stored (a crash between Stripe and our commit).
        pid = str(pi.get("metadata", {}).get("payment", ""))
        if pid.isdigit():
            payment = db.session.get(Payment, int(pid))
            if payment is not None and payment.stripe_payment_intent_id not in (None, pi["id"]):
                payment = None
    if payment is None:
        return None
    return lock_payment(payment.id) if lock else payment


def lock_payment(payment_id: int) -> Payment | None:
    """Lock a payment in ``LOCK_ORDER``: its cohort and enrollment first, then the payment, since
    applying it may confirm or release the seat (which locks them) under the same transaction."""
    owner = db.session.execute(select(Enrollment.cohort_id, Enrollment.id).join(
        Payment, Payment.enrollment_id == Enrollment.id).where(Payment.id == payment_id)).first()
    if owner is None:
        return None
    locking.lock(Cohort, owner.cohort_id)
    locking.lock(Enrollment, owner.id)
    return locking.lock(Payment, payment_id)


def failed_unrecovered(now: datetime, *, days: int = 30, limit: int = 5) -> Batch:
    """Payment attempts that failed in the last ``days`` with no later successful attempt of the same
    enrollment and kind: money someone should follow up. Newest first."""
    later = aliased(Payment)
    recovered = select(later.id).where(later.enrollment_id == Payment.enrollment_id, later.kind == Payment.kind,
                                       later.status == PaymentStatus.SUCCEEDED.value, later.id > Payment.id).exists()
    return first_of(select(Payment).where(Payment.status == PaymentStatus.FAILED.value,
                                          Payment.updated_at >= now - timedelta(days=days), ~recovered)
                    .options(joinedload(Payment.enrollment).joinedload(Enrollment.participant))
                    .order_by(Payment.updated_at.desc(), Payment.id.desc()), limit=limit)
