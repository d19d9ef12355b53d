"""Clearance x payments: paying before the clearance, and the clearance a payment needs."""

import pytest

from retreat.cohorts import enrollment
from retreat.cohorts.models import DepositTiming, EnrollmentStatus
from retreat.payments import checkout as payments
from retreat.payments import ledger, pricing
from retreat.payments.models import PaymentKind
from retreat.timeutil import now_utc
from tests import factories_clearance as fcl
from tests import factories_cohorts as fc
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def _pay(enr, kind):
    _, pi = ph.start_and_confirm(enr, kind)
    payments.sync_payment_intent(pi, now=now_utc())
    fc.new_request()


def test_paid_in_full_before_clearance_reaches_balance_paid_when_cleared_and_can_attend(db):
    """Item 14: a cohort that takes the deposit first; everything is paid before the clearance."""
    s = fcl.setup(deposit_timing=DepositTiming.BEFORE_CLEARANCE, deposit_minor=50000)
    _pay(s.enrollment, PaymentKind.DEPOSIT)
    _pay(s.enrollment, PaymentKind.BALANCE)
    assert pricing.quote(s.enrollment).balance == 0 and ledger.paid(s.enrollment.id) == 450000
    assert s.enrollment.status == EnrollmentStatus.APPLIED
    fcl.cleared(s)
    assert s.enrollment.status == EnrollmentStatus.BALANCE_PAID
    assert enrollment.mark_attended(s.enrollment, now=now_utc(), actor=None)
    assert s.enrollment.status == EnrollmentStatus.ATTENDED


def test_deposit_only_before_clearance_stays_deposit_paid_when_cleared(db):
    s = fcl.setup(deposit_timing=DepositTiming.BEFORE_CLEARANCE, deposit_minor=50000)
    _pay(s.enrollment, PaymentKind.DEPOSIT)
    fcl.cleared(s)
    assert s.enrollment.status == EnrollmentStatus.DEPOSIT_PAID
    assert pricing.quote(s.enrollment).balance == 400000
