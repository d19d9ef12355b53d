"""Charging automatic installments: the scheduler job ``autopay.charge_due``.

For each active mandate, the first unpaid installment whose due date has come *in the cohort's
time zone* is charged off-session. Never twice:

1. ``claim`` locks the cohort and the enrollment, checks that no attempt of that installment is
   open or succeeded, and writes a pending ``Payment`` and an ``AutopayAttempt`` with the
   deterministic key ``autopay-<installment>-attempt-<n>`` (unique, as is (installment, n));
   the transaction commits *before* Stripe is called, so a second process waiting on the lock
   sees the attempt and skips it;
2. ``charge`` calls Stripe with no transaction open, then records what Stripe answered.

The ledger is written only from the webhook (or reconciliation), as for every other payment. A
decline is retried 1, 3 and 5 days after the first attempt's day (an email each time); after the
last, finance sees it (``exhausted``). A card saved afterwards (a new mandate) is tried at once,
with retries of its own. A bank asking for authentication gets the person the
"confirm your payment" link (the checkout page with that PaymentIntent). A card removed in Stripe
makes the mandate unusable and asks the person to add a card or pay by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload

from retreat import audit
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core import jobs, locking, urls
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments import autopay, checkout, gateway, pricing
from retreat.payments.attempts import lock_payment
from retreat.payments.autopay_models import AttemptStatus, AutopayAttempt, AutopayMandate, MandateStatus
from retreat.payments.models import Installment, Payment, PaymentKind, PaymentStatus
from retreat.timeutil import human_date, local_date

RETRY_AFTER_DAYS = (1, 3, 5)  # after the first attempt's day
MAX_ATTEMPTS = 1 + len(RETRY_AFTER_DAYS)
OPEN = (AttemptStatus.CHARGING.value, AttemptStatus.SUCCEEDED.value, AttemptStatus.REQUIRES_ACTION.value)


@dataclass
class Outcome:
    attempt_id: int
    status: str
    message: str = ""


def attempts_of(installment_id: int) -> list[AutopayAttempt]:
    return list(db.session.scalars(select(AutopayAttempt).where(AutopayAttempt.installment_id == installment_id)
                                   .order_by(AutopayAttempt.attempt_no)))


def attempts_by_installment(installment_ids) -> dict[int, list[AutopayAttempt]]:
    """The attempts of several installments in one statement (the payments page)."""
    out: dict[int, list[AutopayAttempt]] = {i: [] for i in installment_ids}
    if out:
        for a in db.session.scalars(select(AutopayAttempt).where(AutopayAttempt.installment_id.in_(list(out)))
                                    .order_by(AutopayAttempt.installment_id, AutopayAttempt.attempt_no)):
            out[a.installment_id].append(a)
    return out


def claim(mandate_id: int, *, now: datetime) -> int | None:
    """Write the next attempt due for this mandate (the caller commits), or None if nothing is due."""
    owner = db.session.execute(select(Enrollment.cohort_id, Enrollment.id).join(
        AutopayMandate, AutopayMandate.enrollment_id == Enrollment.id).where(AutopayMandate.id == mandate_id)).first()
    if owner is None:
        return None
    cohort = locking.lock(Cohort, owner.cohort_id)
    enr = locking.lock(Enrollment, owner.id)
    mandate = db.session.get(AutopayMandate, mandate_id)
    db.session.refresh(mandate)
    if mandate.status != MandateStatus.ACTIVE or not enr.is_active:
        return None
    today = local_date(now, cohort.timezone)
    q = pricing.quote(enr)
    for row in checkout.installment_progress(enr, q):
        inst: Installment = row["installment"]
        if row["remaining"] <= 0:
            continue
        if inst.due_on > today:
            return None
        tried = attempts_of(inst.id)
        if any(a.status in OPEN for a in tried):
            return None  # charging now, charged (the webhook will tell the ledger) or waiting for the person
        mine = [a for a in tried if a.mandate_id == mandate.id]  # a new card starts afresh, at once
        if mine and (mine[-1].retry_on is None or mine[-1].retry_on > today):
            return None  # retries exhausted (finance follows up), or the next one is not due yet
        n = len(tried) + 1
        amount = min(row["remaining"], max(0, q.balance))
        if amount <= 0:
            return None
        key = f"autopay-{inst.id}-attempt-{n}"
        payment = Payment(enrollment_id=enr.id, kind=PaymentKind.INSTALLMENT.value, attempt=n, amount_minor=amount,
                          currency=inst.currency, status=PaymentStatus.PENDING.value, idempotency_key=key,
                          created_at=now, updated_at=now)
        db.session.add(payment)
        db.session.flush()
        attempt = AutopayAttempt(mandate_id=mandate.id, installment_id=inst.id, payment_id=payment.id, attempt_no=n,
                                 idempotency_key=key, status=AttemptStatus.CHARGING.value,
                                 charge_on=mine[0].charge_on if mine else today, failure_message="",
                                 created_at=now, updated_at=now)
        db.session.add(attempt)
        db.session.flush()
        audit.record("payments.autopay_attempt", object_type="autopay_attempt", object_id=attempt.id, now=now,
                     details={"enrollment": enr.id, "installment": inst.id, "attempt": n, "amount_minor": amount})
        return attempt.id
    return None


def charge(attempt_id: int, *, now: datetime) -> Outcome:
    """Call Stripe for a claimed attempt and record its answer. Commits."""
    attempt = db.session.get(AutopayAttempt, attempt_id)
    mandate, payment = attempt.mandate, attempt.payment
    params = {"customer": mandate.stripe_customer_id or "", "payment_method": mandate.stripe_payment_method_id or "",
              "amount_minor": payment.amount_minor, "currency": payment.currency,
              "idempotency_key": attempt.idempotency_key,
              "metadata": {**checkout.metadata_for(payment), "autopay_attempt": str(attempt.id)}}
    db.session.commit()  # the attempt is on record before Stripe is called; no lock is held
    try:
        answer = gateway.charge_off_session(**params)
    except gateway.CardGone as exc:
        return _record(attempt_id, AttemptStatus.NO_CARD, exc.message, None, now=now)
    except gateway.GatewayError as exc:
        # Unknown whether Stripe charged: the attempt stays "charging" (never charged again by us);
        # finance sees it among the exhausted / stuck ones.
        _note(attempt_id, exc.message, now=now)
        return Outcome(attempt_id, AttemptStatus.CHARGING.value, exc.message)
    status = {"succeeded": AttemptStatus.SUCCEEDED, "requires_action": AttemptStatus.REQUIRES_ACTION,
              "processing": AttemptStatus.CHARGING}.get(answer["outcome"], AttemptStatus.FAILED)
    return _record(attempt_id, status, answer["message"], answer["payment_intent"], now=now)


def _note(attempt_id: int, message: str, *, now: datetime) -> None:
    attempt = locking.lock(AutopayAttempt, attempt_id)
    attempt.failure_message = message[:500]
    attempt.updated_at = now
    db.session.commit()


def _record(attempt_id: int, status: AttemptStatus, message: str, pi: dict | None, *, now: datetime) -> Outcome:
    payment_id = db.session.get(AutopayAttempt, attempt_id).payment_id
    payment = lock_payment(payment_id)  # cohort, enrollment, payment: the webhook's order
    attempt = locking.lock(AutopayAttempt, attempt_id)
    mandate, enr = attempt.mandate, payment.enrollment
    if pi and payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = pi["id"]
    attempt.status = status.value
    attempt.failure_message = (message or "")[:500]
    attempt.finished_at = now if status != AttemptStatus.CHARGING else None
    attempt.updated_at = now
    if status in (AttemptStatus.FAILED, AttemptStatus.NO_CARD) and payment.status == PaymentStatus.PENDING:
        payment.status = PaymentStatus.FAILED.value if status == AttemptStatus.FAILED else PaymentStatus.CANCELED.value
        payment.failure_message = (message or "The card was declined.")[:500]
        payment.updated_at = now
    inst = attempt.installment
    amount = format_money(payment.amount_minor, payment.currency)
    base = {"amount": amount, "due_on": human_date(inst.due_on), "seq": inst.seq}
    if status == AttemptStatus.FAILED:
        k = sum(1 for a in attempts_of(inst.id) if a.mandate_id == mandate.id)  # this card's k-th try
        if k < MAX_ATTEMPTS:
            attempt.retry_on = attempt.charge_on + timedelta(days=RETRY_AFTER_DAYS[k - 1])
            autopay.notify(enr, "failed", mandate=mandate, now=now, key=f"autopay-attempt-{attempt.id}-failed",
                           reason=attempt.failure_message, retry_on=human_date(attempt.retry_on), **base)
        else:
            attempt.retry_on = None
            autopay.notify(enr, "final", mandate=mandate, now=now, key=f"autopay-attempt-{attempt.id}-final",
                           reason=attempt.failure_message, **base)
            audit.record("payments.autopay_exhausted", object_type="autopay_attempt", object_id=attempt.id, now=now,
                         details={"enrollment": enr.id, "installment": inst.id})
    elif status == AttemptStatus.REQUIRES_ACTION:
        autopay.notify(enr, "action", mandate=mandate, now=now, key=f"autopay-attempt-{attempt.id}-action",
                       confirm_url=f"{urls.base_url()}/me/payments/{enr.id}/checkout/{payment.id}", **base)
    elif status == AttemptStatus.NO_CARD:
        autopay.mark_unusable(mandate, message or "The saved card no longer exists.", now=now)
    audit.record("payments.autopay_result", object_type="autopay_attempt", object_id=attempt.id, now=now,
                 details={"status": status.value, "payment_intent": pi["id"] if pi else None})
    db.session.commit()
    return Outcome(attempt_id, status.value, message or "")


def candidates(now: datetime, *, limit: int = 200) -> list[int]:
    """Active mandates with an installment due by today somewhere (cohort-local dates are checked
    under the lock in ``claim``; a day of margin here covers every time zone)."""
    horizon = (now + timedelta(days=1)).date()
    return list(db.session.scalars(
        select(AutopayMandate.id).join(Installment, Installment.enrollment_id == AutopayMandate.enrollment_id)
        .where(AutopayMandate.status == MandateStatus.ACTIVE.value, Installment.is_current.is_(True),
               Installment.due_on <= horizon).distinct().order_by(AutopayMandate.id).limit(limit)))


def charge_due(now: datetime) -> list[Outcome]:
    """Charge what is due at ``now``; safe to run in several processes at once."""
    outcomes = []
    ids = candidates(now)
    db.session.commit()
    for mandate_id in ids:
        if jobs.stopping():
            break
        try:
            attempt_id = claim(mandate_id, now=now)
            db.session.commit()
        except IntegrityError:  # another process wrote the same attempt first
            db.session.rollback()
            continue
        if attempt_id is not None:
            outcomes.append(charge(attempt_id, now=now))
    return outcomes


def exhausted(*, limit: int = 5) -> Batch:
    """Installments whose automatic charge failed after the last retry, or is stuck (Stripe could
    not be reached, so we never charge it again by ourselves), or whose card was removed, with no
    later attempt and no payment of the enrollment since: finance's list. Newest first."""
    stuck = (AutopayAttempt.status == AttemptStatus.CHARGING.value) & (AutopayAttempt.failure_message != "")
    final = (AutopayAttempt.status == AttemptStatus.FAILED.value) & AutopayAttempt.retry_on.is_(None)
    newer = aliased(AutopayAttempt)
    superseded = select(newer.id).where(newer.installment_id == AutopayAttempt.installment_id,
                                        newer.attempt_no > AutopayAttempt.attempt_no).exists()
    paid = aliased(Payment)
    paid_since = select(paid.id).where(paid.enrollment_id == Payment.enrollment_id, paid.id > Payment.id,
                                       paid.status == PaymentStatus.SUCCEEDED.value).exists()
    return first_of(select(AutopayAttempt).join(Payment, Payment.id == AutopayAttempt.payment_id)
                    .where(final | stuck | (AutopayAttempt.status == AttemptStatus.NO_CARD.value),
                           ~superseded, ~paid_since)
                    .options(joinedload(AutopayAttempt.payment).joinedload(Payment.enrollment)
                             .joinedload(Enrollment.participant), joinedload(AutopayAttempt.installment))
                    .order_by(AutopayAttempt.updated_at.desc(), AutopayAttempt.id.desc()), limit=limit)


def charge_due_job(now: datetime) -> list[Outcome]:
    return charge_due(now)


jobs.register("autopay.charge_due", charge_due_job, seconds=300)
