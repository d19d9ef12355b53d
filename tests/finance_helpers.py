"""Helpers for finance console tests: enrollments with money in the ledger, without Stripe.

``seated`` builds a confirmed enrollment the way the payment flow leaves it (a succeeded deposit
payment with its charge in the ledger, a current installment plan) so balances and reports can be
tested at any date; ``bulk`` writes many rows at once for query-count tests.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from retreat.cohorts.models import Enrollment, EnrollmentStatus, SeatState
from retreat.extensions import db
from retreat.models import Role, User
from retreat.payments import ledger
from retreat.payments.models import Installment, LedgerEntry, LedgerType, Payment, PaymentKind, PaymentStatus
from tests import factories
from tests import factories_cohorts as fc

_obj = itertools.count(1)
NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


def cohort(**kw):
    kw.setdefault("starts_at", NOW + timedelta(days=120))
    kw.setdefault("balance_due_on", (NOW + timedelta(days=90)).date())
    return fc.cohort(**kw)


def pay(enr: Enrollment, amount: int, *, kind: PaymentKind = PaymentKind.BALANCE, at: datetime = NOW,
        fee: int | None = None) -> Payment:
    """A succeeded payment with its charge (and optionally its Stripe fee) in the ledger."""
    n = next(_obj)
    cur = enr.cohort.currency.upper()
    p = Payment(enrollment_id=enr.id, kind=kind.value, attempt=n, amount_minor=amount, currency=cur,
                status=PaymentStatus.SUCCEEDED.value, idempotency_key=f"test-{kind.value}-{enr.id}-{n}",
                stripe_payment_intent_id=f"pi_test_{n}", succeeded_at=at, created_at=at, updated_at=at)
    db.session.add(p)
    db.session.flush()
    ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=amount, currency=cur,
                  object_id=p.stripe_payment_intent_id, payment_id=p.id, now=at, memo=f"{kind.value} payment")
    if fee:
        ledger.record(enrollment_id=enr.id, entry_type=LedgerType.FEE, amount_minor=-fee, currency=cur,
                      object_id=f"txn_test_{n}", payment_id=p.id, now=at, memo="Stripe fee")
    return p


def entry(enr: Enrollment, entry_type: LedgerType, amount: int, *, at: datetime = NOW, payment: Payment | None = None):
    ledger.record(enrollment_id=enr.id, entry_type=entry_type, amount_minor=amount,
                  currency=enr.cohort.currency.upper(), object_id=f"{entry_type.value}_test_{next(_obj)}",
                  payment_id=payment.id if payment else None, now=at)


def seated(c, *, at: datetime = NOW, plan: list[tuple[date, int]] | None = None, deposit_fee: int | None = None,
           name: str | None = None) -> Enrollment:
    """A participant whose deposit is paid (seat confirmed) with ``plan`` as their installments
    (default: the whole balance due on the cohort's balance date)."""
    enr = fc.applicant(c, now=at, **({"name": name} if name else {}))
    enr.seat = SeatState.CONFIRMED.value
    enr.status = EnrollmentStatus.DEPOSIT_PAID.value
    enr.seat_confirmed_at = at
    c.seats_taken += 1
    db.session.flush()
    pay(enr, c.deposit_minor, kind=PaymentKind.DEPOSIT, at=at, fee=deposit_fee)
    rows = plan if plan is not None else [(c.balance_due_on, c.price_minor - c.deposit_minor)]
    for seq, (due, amount) in enumerate(rows, start=1):
        db.session.add(Installment(enrollment_id=enr.id, plan_version=1, is_current=True, seq=seq, due_on=due,
                                   amount_minor=amount, currency=c.currency.upper(), created_at=at, updated_at=at))
    db.session.flush()
    return enr


def bulk(c, count: int, *, at: datetime = NOW, spread_days: int = 300) -> None:
    """``count`` confirmed enrollments in ``c``, each with a deposit charge, a fee, and a current
    installment due on the cohort's balance date; entries spread over ``spread_days`` days."""
    base = factories.n() * 100000
    users = [User(email=f"bulk{base + i}@example.com", name=f"Bulk {base + i}", role=Role.PARTICIPANT.value,
                  tz="America/Denver") for i in range(count)]
    db.session.add_all(users)
    db.session.flush()
    enrs = [Enrollment(cohort_id=c.id, participant_id=u.id, status=EnrollmentStatus.DEPOSIT_PAID.value,
                       seat=SeatState.CONFIRMED.value, applied_at=at, holds_taken=1, offers_made=0,
                       motivation="", lodging="", created_at=at, updated_at=at) for u in users]
    db.session.add_all(enrs)
    db.session.flush()
    cur = c.currency.upper()
    pays = [Payment(enrollment_id=e.id, kind=PaymentKind.DEPOSIT.value, attempt=1, amount_minor=c.deposit_minor,
                    currency=cur, status=PaymentStatus.SUCCEEDED.value, idempotency_key=f"bulk-deposit-{e.id}",
                    stripe_payment_intent_id=f"pi_bulk_{e.id}", created_at=at, updated_at=at) for e in enrs]
    db.session.add_all(pays)
    db.session.flush()
    rows = []
    for i, (e, p) in enumerate(zip(enrs, pays, strict=True)):
        when = at - timedelta(days=i % max(1, spread_days), hours=i % 24)
        rows.append(LedgerEntry(enrollment_id=e.id, entry_type="charge", amount_minor=c.deposit_minor, currency=cur,
                                stripe_object_id=p.stripe_payment_intent_id, payment_id=p.id, created_at=when))
        rows.append(LedgerEntry(enrollment_id=e.id, entry_type="fee", amount_minor=-(c.deposit_minor // 30),
                                currency=cur, stripe_object_id=f"txn_bulk_{e.id}", payment_id=p.id, created_at=when))
    db.session.add_all(rows)
    db.session.add_all([Installment(enrollment_id=e.id, plan_version=1, is_current=True, seq=1,
                                    due_on=c.balance_due_on, amount_minor=c.price_minor - c.deposit_minor,
                                    currency=cur, created_at=at, updated_at=at) for e in enrs])
    db.session.flush()
