"""Not medically cleared -> the deposit comes back in full, automatically (clearance x payments)."""

import pytest
from sqlalchemy import select

from retreat.cohorts.models import DepositTiming, EnrollmentStatus
from retreat.payments import checkout as payments
from retreat.payments import ledger, refunds
from retreat.payments.models import Refund
from retreat.timeutil import now_utc
from tests import factories_clearance as fcl
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def test_not_cleared_decision_refunds_the_paid_deposit(db):
    s = fcl.setup(deposit_timing=DepositTiming.BEFORE_CLEARANCE, deposit_minor=50000)
    _, pi = ph.start_and_confirm(s.enrollment)
    payments.sync_payment_intent(pi, now=now_utc())
    assert ledger.paid(s.enrollment.id) == 50000
    req = fcl.submit(s)
    fcl.decide(s, req, "not_cleared", participant_note="We cannot clear you for this retreat.")
    db.session.commit()
    assert s.enrollment.status == EnrollmentStatus.NOT_CLEARED
    # decided in the same transaction as the decision ...
    planned = db.session.scalars(select(Refund).where(Refund.payment_id.isnot(None))).all()
    assert [(r.kind, r.amount_minor, r.status) for r in planned] == [("not_cleared", 50000, "pending")]
    # ... and sent to Stripe by the scheduler job after the commit, exactly once
    refunds.submit_pending(now=now_utc())
    refunds.submit_pending(now=now_utc())
    assert ledger.paid(s.enrollment.id) == 0
    db.session.expire_all()
    assert [r.status for r in db.session.scalars(select(Refund))] == ["succeeded"]


def test_not_cleared_without_payment_plans_no_refund(db):
    s = fcl.setup()
    fcl.decide(s, fcl.submit(s), "not_cleared", participant_note="Sorry.")
    db.session.commit()
    assert db.session.scalars(select(Refund)).all() == []


def test_the_decision_and_its_refund_commit_together_or_not_at_all(db, monkeypatch):
    """The refund is planned by a signal handler (payments) inside the decision's transaction
    (clinical): if planning it fails, the decision fails with it and nothing is half-done."""
    s = fcl.setup(deposit_timing=DepositTiming.BEFORE_CLEARANCE, deposit_minor=50000)
    _, pi = ph.start_and_confirm(s.enrollment)
    payments.sync_payment_intent(pi, now=now_utc())
    req = fcl.submit(s)
    db.session.commit()

    def failing_plan(*args, **kwargs):
        raise RuntimeError("the refund could not be planned")

    monkeypatch.setattr(refunds, "plan", failing_plan)
    with pytest.raises(RuntimeError):
        fcl.decide(s, req, "not_cleared", participant_note="We cannot clear you for this retreat.")
    db.session.rollback()
    db.session.expire_all()
    assert s.enrollment.status != EnrollmentStatus.NOT_CLEARED
    assert db.session.scalars(select(Refund)).all() == []
    monkeypatch.undo()
    fcl.decide(s, req, "not_cleared", participant_note="We cannot clear you for this retreat.")
    db.session.commit()
    assert [(r.kind, r.amount_minor) for r in db.session.scalars(select(Refund))] == [("not_cleared", 50000)]
