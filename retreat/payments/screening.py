"""The screening fee (issue #18 item 6): an optional fee per cohort, charged with the application.

Rules, each written once here and read by the pages, the refunds and the policy text:

* it is owed when the cohort has one at application time (``Enrollment.screening_fee_minor``, a
  snapshot) and the application counts as submitted only once it is paid
  (``Enrollment.screening_fee_paid_at``, set from the payment's webhook or return page): until
  then the intake cannot go to the provider and no seat can be held (``cohorts.seats``,
  ``clinical.clearance``);
* it is credited against the price as the first part of the deposit (``pricing.quote`` counts
  every charge as paid, so the deposit left to pay and the balance are smaller by the fee; the
  cohort form keeps it below the deposit, ``cohorts.catalog.screening_fee_error``);
* refunded in full when the provider does not clear the person (everything paid comes back,
  ``refunds.refund_on_leaving``); kept when the person withdraws (``refunds.policy_amount``
  leaves out what ``kept_on_withdrawal`` returns).

Paying it is an ordinary payment of kind ``screening_fee`` (``checkout.begin`` / ``ensure_intent``
/ ``sync_payment_intent``): the ledger entry, the receipt email and the numbered receipt come from
the webhook as for every other payment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from retreat import audit
from retreat.cohorts import seats
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import Conflict
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments.models import CASH_TYPES, LedgerEntry, Payment, PaymentKind


def amount_due(enr: Enrollment) -> int:
    """The screening fee still to pay (0 without one, or once paid)."""
    return int(enr.screening_fee_minor or 0) if enr.screening_fee_due else 0


def require_payable(enr: Enrollment) -> None:
    """Refuse paying the fee of an application that is closed or has none to pay."""
    if not enr.is_active:
        raise Conflict("This application is closed, so there is no screening fee to pay.")
    if not enr.screening_fee_due:
        raise Conflict("There is no screening fee to pay: it is paid, or this cohort has none.")


def kept_on_withdrawal(enr: Enrollment) -> int:
    """The screening fee a withdrawal keeps: what was received on screening-fee payments, net of
    any refund already made on them (e.g. by finance)."""
    return int(db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
        .join(Payment, Payment.id == LedgerEntry.payment_id)
        .where(LedgerEntry.enrollment_id == enr.id, LedgerEntry.entry_type.in_(CASH_TYPES),
               Payment.kind == PaymentKind.SCREENING_FEE.value)) or 0)


def fee_payment_ids(enrollment_id: int) -> set[int]:
    return set(db.session.scalars(select(Payment.id).where(
        Payment.enrollment_id == enrollment_id, Payment.kind == PaymentKind.SCREENING_FEE.value)))


def fee_paid(payment: Payment, *, now: datetime) -> None:
    """The fee's charge landed in the ledger (called once per charge, in its transaction): the
    application now counts as submitted."""
    enr = seats.lock_enrollment(payment.enrollment_id)
    if enr.screening_fee_paid_at is not None:
        return
    enr.screening_fee_paid_at = now
    enr.updated_at = now
    seats.log(enr, "screening_fee_paid", now=now, actor=None,
              reason="Screening fee paid: the application is submitted")
    audit.record("payments.screening_fee_paid", object_type="enrollment", object_id=enr.id, now=now,
                 details={"payment": payment.id, "amount_minor": payment.amount_minor, "currency": payment.currency})


def terms(fee_minor: int | None, currency: str) -> str:
    """What the person is told, plainly, before paying (and in the refund policy)."""
    if not fee_minor:
        return ""
    fee = format_money(fee_minor, currency)
    return (f"A screening fee of {fee} is charged with your application; your application counts as "
            f"submitted once it is paid. The {fee} is credited against the price (it is the first part of "
            f"your deposit). If the medical provider does not clear you, it is refunded in full. If you "
            f"withdraw, it is kept.")


def cohort_terms(cohort: Cohort) -> str:
    return terms(cohort.screening_fee_minor, cohort.currency)


def enrollment_terms(enr: Enrollment) -> str:
    return terms(enr.screening_fee_minor, enr.cohort.currency)
