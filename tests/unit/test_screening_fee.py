"""The screening fee (issue #18 item 6), against PostgreSQL and localstripe: paid with the
application (which counts as submitted only then), credited against the price as the first part of
the deposit, refunded in full when not cleared, kept on withdrawal; cohorts without one unchanged."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import catalog, enrollment, seats
from retreat.cohorts.models import DepositTiming, EnrollmentStatus
from retreat.core.errors import Conflict
from retreat.finance import reports
from retreat.messaging.models import OutboxMessage
from retreat.payments import checkout as payments
from retreat.payments import ledger, pricing, refund_policy, refunds, screening, statements
from retreat.payments.models import PaymentKind, Refund
from retreat.timeutil import now_utc
from tests import factories_clearance as fcl
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")

FEE, DEPOSIT, PRICE = 15000, 50000, 300000


def _pay(enr, kind):
    _, pi = ph.start_and_confirm(enr, kind)
    payments.sync_payment_intent(pi, now=now_utc())
    return pi


def _refunds(db, enr):
    db.session.expire_all()
    return [(r.kind, r.amount_minor, r.status) for r in db.session.scalars(
        select(Refund).where(Refund.enrollment_id == enr.id).order_by(Refund.id))]


@pytest.mark.parametrize(("fee", "message"), [
    (-100, "cannot be negative"),
    (PRICE + 1, "cannot be more than the price"),
    (DEPOSIT, "must be less than the deposit"),
])
def test_the_cohort_refuses_a_bad_fee(fee, message):
    assert message in catalog.screening_fee_error(fee, PRICE, DEPOSIT, "USD")


def test_a_fee_below_the_deposit_or_none_is_fine():
    assert catalog.screening_fee_error(0, PRICE, DEPOSIT, "USD") == ""
    assert catalog.screening_fee_error(FEE, PRICE, DEPOSIT, "USD") == ""


def test_the_fee_is_paid_first_then_credited_against_the_deposit_and_price(db):
    c = ph.cohort(price_minor=PRICE, deposit_minor=DEPOSIT, screening_fee_minor=FEE)
    enr = ph.applicant(c)
    assert enr.screening_fee_minor == FEE and enr.screening_fee_due
    assert payments.amount_due(enr, PaymentKind.SCREENING_FEE) == FEE
    # not submitted yet: no seat can be held, no deposit paid
    with pytest.raises(Conflict, match="screening fee first"):
        seats.take_hold(enr, now=now_utc(), actor=enr.participant)
    with pytest.raises(Conflict, match="screening fee first"):
        payments.begin(enr, PaymentKind.DEPOSIT, now=now_utc(), actor=enr.participant)
    pi = _pay(enr, PaymentKind.SCREENING_FEE)
    db.session.commit()
    assert pi["status"] == "succeeded"
    assert enr.screening_fee_paid_at is not None and not enr.screening_fee_due
    assert [t.event for t in enr.transitions][-1] == "screening_fee_paid"
    # the webhook delivered again records nothing twice
    payments.sync_payment_intent(pi, now=now_utc())
    assert ledger.paid(enr.id) == FEE
    q = pricing.quote(enr)
    assert q.deposit_outstanding == DEPOSIT - FEE and q.balance == PRICE - FEE
    assert payments.amount_due(enr, PaymentKind.SCREENING_FEE) == 0
    with pytest.raises(Conflict, match="no screening fee to pay"):
        payments.begin(enr, PaymentKind.SCREENING_FEE, now=now_utc(), actor=enr.participant)
    _pay(enr, PaymentKind.DEPOSIT)
    db.session.commit()
    assert enr.seat == "confirmed" and ledger.paid(enr.id) == DEPOSIT
    assert pricing.quote(enr).balance == PRICE - DEPOSIT
    # receipts like other payments; statement labels the fee; reports count it
    kinds = [m.context.get("kind") for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "receipt_charge"))]
    assert sorted(kinds) == ["deposit", "screening fee"]
    labels = [line.label for line in statements.build(enr, now=now_utc()).money_lines]
    assert labels == [statements.SCREENING_FEE_LABEL, "Payment"]
    fig = reports.totals(reports.ReportFilter(cohort_id=c.id))["USD"]
    assert fig.amounts["screening_fees"] == FEE and fig.amounts["deposits"] == DEPOSIT - FEE
    assert fig.collected == DEPOSIT


def test_withdrawing_keeps_the_fee(db):
    c = ph.cohort(price_minor=PRICE, deposit_minor=DEPOSIT, screening_fee_minor=FEE)
    enr = ph.applicant(c)
    _pay(enr, PaymentKind.SCREENING_FEE)
    _pay(enr, PaymentKind.DEPOSIT)
    db.session.commit()
    when = c.starts_at - timedelta(days=90)  # 100 % tier
    quote = refunds.withdrawal_quote(enr, when)
    assert quote["amount"] == DEPOSIT - FEE and quote["screening_fee_kept"] == FEE
    enrollment.withdraw(enr, now=when, actor=enr.participant)
    db.session.commit()
    refunds.submit_pending(now=now_utc())
    assert _refunds(db, enr) == [("policy", DEPOSIT - FEE, "succeeded")]
    assert ledger.paid(enr.id) == FEE
    assert refunds.withdrawal_quote(enr, when)["amount"] == 0


def test_the_policy_text_says_the_fee_is_kept_on_withdrawal(db):
    c = ph.cohort(price_minor=PRICE, deposit_minor=DEPOSIT, screening_fee_minor=FEE)
    text = refund_policy.cohort_policy_text(c)
    assert "The screening fee ($150.00) is kept if you withdraw, and refunded in full if you are not" in text
    assert "of what you paid (apart from the screening fee) is refunded" in text
    terms = screening.cohort_terms(c)
    assert "credited against the price" in terms and "refunded in full" in terms and "it is kept" in terms
    plain = ph.cohort()
    assert refund_policy.cohort_policy_text(plain) == refund_policy.policy_text(refund_policy.schedule(plain))
    assert "screening" not in refund_policy.cohort_policy_text(plain) and screening.cohort_terms(plain) == ""


def test_not_cleared_refunds_the_fee_and_deposit_in_full(db):
    s = fcl.setup(deposit_timing=DepositTiming.BEFORE_CLEARANCE, deposit_minor=DEPOSIT, screening_fee_minor=FEE)
    enr = s.enrollment
    with pytest.raises(Conflict, match="screening fee first"):
        fcl.submit(s)
    _pay(enr, PaymentKind.SCREENING_FEE)
    _pay(enr, PaymentKind.DEPOSIT)
    db.session.commit()
    assert ledger.paid(enr.id) == DEPOSIT
    req = fcl.submit(s)
    fcl.decide(s, req, "not_cleared", participant_note="We cannot clear you for this retreat.")
    db.session.commit()
    assert enr.status == EnrollmentStatus.NOT_CLEARED
    refunds.submit_pending(now=now_utc())
    rows = _refunds(db, enr)
    assert sorted(a for _, a, _ in rows) == [FEE, DEPOSIT - FEE]
    assert {(k, st) for k, _, st in rows} == {("not_cleared", "succeeded")}
    assert ledger.paid(enr.id) == 0
    assert all("screening fee included" in r.reason for r in db.session.scalars(select(Refund)))


def test_only_the_fee_paid_then_not_cleared_refunds_the_fee(db):
    s = fcl.setup(screening_fee_minor=FEE)
    _pay(s.enrollment, PaymentKind.SCREENING_FEE)
    db.session.commit()
    fcl.decide(s, fcl.submit(s), "not_cleared", participant_note="Sorry.")
    db.session.commit()
    refunds.submit_pending(now=now_utc())
    assert _refunds(db, s.enrollment) == [("not_cleared", FEE, "succeeded")]


def test_a_cohort_without_a_fee_is_unchanged(db):
    c = ph.cohort(price_minor=PRICE, deposit_minor=DEPOSIT)
    enr = ph.applicant(c)
    assert enr.screening_fee_minor is None and not enr.screening_fee_due
    assert payments.amount_due(enr, PaymentKind.SCREENING_FEE) == 0
    with pytest.raises(Conflict, match="no screening fee to pay"):
        payments.begin(enr, PaymentKind.SCREENING_FEE, now=now_utc(), actor=enr.participant)
    _pay(enr, PaymentKind.DEPOSIT)
    db.session.commit()
    assert ledger.paid(enr.id) == DEPOSIT and enr.seat == "confirmed"
