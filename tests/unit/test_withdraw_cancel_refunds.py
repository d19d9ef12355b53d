"""Cohorts x payments: a withdrawal is refunded by the cohort's policy, a cancelled cohort in full.

Refunds are decided in the same transaction as the exit and sent by the scheduler job
``refunds.submit_pending`` after the commit (here against localstripe)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import catalog as cohorts
from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import CohortStatus, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.errors import Conflict
from retreat.messaging.models import OutboxMessage
from retreat.payments import checkout as payments
from retreat.payments import ledger, refunds
from retreat.payments.models import PaymentKind, Refund
from retreat.timeutil import now_utc
from tests import factories
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def _paid(c, kinds=(PaymentKind.DEPOSIT,)):
    enr = ph.applicant(c)
    for kind in kinds:
        _, pi = ph.start_and_confirm(enr, kind)
        payments.sync_payment_intent(pi, now=now_utc())
    return enr


def _refunds(enr):
    return [(r.kind, r.amount_minor, r.status) for r in
            db_scalars(select(Refund).where(Refund.enrollment_id == enr.id).order_by(Refund.id))]


def db_scalars(stmt):
    from retreat.extensions import db

    db.session.expire_all()
    return db.session.scalars(stmt).all()


# (when, relative to the start; the refund of a 500.00 deposit under the default 60 d 100 % / 30 d 50 % policy)
BOUNDARIES = [
    (timedelta(days=60), 50000),  # a step applies up to and including its instant
    (timedelta(days=60, seconds=-1), 25000),
    (timedelta(days=30), 25000),
    (timedelta(days=30, seconds=-1), 0),
]


@pytest.mark.parametrize(("before_start", "expected"), BOUNDARIES)
def test_withdrawal_refund_follows_the_policy_at_its_boundaries(db, before_start, expected):
    c = ph.cohort(deposit_minor=50000)
    enr = _paid(c)
    when = c.starts_at - before_start
    assert refunds.withdrawal_quote(enr, when)["amount"] == expected
    assert enrollment.withdraw(enr, now=when, actor=enr.participant) is True
    db.session.commit()
    # decided with the withdrawal, in the same transaction ...
    assert _refunds(enr) == ([("policy", expected, "pending")] if expected else [])
    assert enr.status == S.WITHDRAWN and enr.seat == SeatState.NONE and c.seats_taken == 0
    # ... sent by the scheduler job, once, however often it runs
    refunds.submit_pending(now=now_utc())
    refunds.submit_pending(now=now_utc())
    assert _refunds(enr) == ([("policy", expected, "succeeded")] if expected else [])
    assert ledger.paid(enr.id) == 50000 - expected
    # withdrawing again changes nothing and refunds nothing more
    assert enrollment.withdraw(enr, now=when, actor=enr.participant) is False
    assert len(_refunds(enr)) == (1 if expected else 0)


def test_withdrawal_without_payment_plans_no_refund(db):
    enr = ph.applicant(ph.cohort())
    enrollment.withdraw(enr, now=now_utc(), actor=enr.participant)
    assert _refunds(enr) == []


def test_cancelling_a_cohort_exits_everyone_and_refunds_all_paid_exactly_once(db):
    c = ph.cohort(price_minor=300000, deposit_minor=50000, capacity=4)
    full = _paid(c, (PaymentKind.DEPOSIT, PaymentKind.BALANCE))
    deposit_only = _paid(c)
    holding = ph.applicant(c)
    seats.take_hold(holding, now=now_utc(), actor=None)
    left_before = _paid(c)
    enrollment.withdraw(left_before, now=c.starts_at - timedelta(days=100), actor=None)
    db.session.commit()
    refunds.submit_pending(now=now_utc())
    assert ledger.paid(full.id) == 300000 and ledger.paid(deposit_only.id) == 50000
    assert ledger.paid(left_before.id) == 0

    staff = factories.user("facilitator", password=None)
    assert cohorts.set_status(c, "cancelled", actor=staff, now=now_utc()) is True
    db.session.commit()
    for e in (full, deposit_only, holding):
        assert e.status == S.CANCELLED and e.seat == SeatState.NONE and e.hold_expires_at is None
    assert left_before.status == S.WITHDRAWN  # already gone: untouched
    assert c.status == CohortStatus.CANCELLED and c.seats_taken == 0 == seats.count_taken(c.id)
    assert _refunds(full) == [("practice_cancelled", 250000, "pending"), ("practice_cancelled", 50000, "pending")]
    assert _refunds(deposit_only) == [("practice_cancelled", 50000, "pending")]
    assert _refunds(holding) == []
    mails = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "cohort_cancelled"))
    assert sorted(m.recipient_email for m in mails) == sorted(
        e.participant.email for e in (full, deposit_only, holding))
    reminders = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "payment_reminder",
                                                       OutboxMessage.status == "pending"))
    assert [m for m in reminders if m.group_key in (f"enrollment:{full.id}", f"enrollment:{deposit_only.id}")] == []

    # the job runs twice (and the cohort is "cancelled" again): everyone refunded in full, once
    refunds.submit_pending(now=now_utc())
    assert cohorts.set_status(c, "cancelled", actor=staff, now=now_utc()) is False
    db.session.commit()
    refunds.submit_pending(now=now_utc())
    assert ledger.paid(full.id) == 0 and ledger.paid(deposit_only.id) == 0
    assert [s for *_, s in _refunds(full) + _refunds(deposit_only)] == ["succeeded"] * 3
    assert len(db_scalars(select(OutboxMessage).where(OutboxMessage.template == "cohort_cancelled"))) == 3


def test_a_completed_cohort_cannot_be_cancelled(db):
    c = ph.cohort()
    enr = _paid(c)
    staff = factories.user("facilitator", password=None)
    cohorts.set_status(c, "completed", actor=staff, now=now_utc())
    with pytest.raises(Conflict, match="completed cohort cannot be cancelled"):
        cohorts.set_status(c, "cancelled", actor=staff, now=now_utc())
    assert enr.status != S.CANCELLED and _refunds(enr) == []
