"""Scholarships: a reduced price per enrollment with a reason (audited); bad input changes
nothing; the balance, the installments still due and refunds follow from the new price."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.core.errors import Conflict, ValidationFailed
from retreat.payments import checkout, ledger, pricing, refunds
from retreat.payments.models import Installment, LedgerType, PaymentKind, PriceOverride
from tests import factories
from tests import factories_cohorts as fc

NOW = fc.NOW


def _paid(enr, amount, ref="pi_test_1"):
    ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=amount, currency="USD",
                  object_id=ref, now=NOW)


@pytest.fixture()
def setup(db):
    c = fc.cohort(price_minor=400000, deposit_minor=50000, currency="USD")
    return c, fc.applicant(c), factories.user("finance", password=None)


@pytest.mark.parametrize("price,reason,field,message", [
    ("4000.01", "Hardship", "price", "between zero and the cohort's price ($4,000.00)"),
    ("-1", "Hardship", "price", "between zero"),
    ("abc", "Hardship", "price", "Enter a price such as"),
    ("", "Hardship", "price", "Scholarship price is required."),
    ("1000", "   ", "reason", "Give a reason"),
    ("1000", "x" * 501, "reason", "at most 500 characters (it has 501)"),
])
def test_bad_input_is_refused_naming_the_field(setup, db, price, reason, field, message):
    _c, enr, staff = setup
    with pytest.raises(ValidationFailed) as exc:
        pricing.set_scholarship(enr, price, reason=reason, now=NOW, actor=staff)
    assert message in exc.value.errors[field][0]
    assert db.session.scalar(select(func.count()).select_from(PriceOverride)) == 0


def test_below_what_was_paid_is_refused_with_the_lowest_possible_price(setup, db):
    _c, enr, staff = setup
    _paid(enr, 150000)
    with pytest.raises(Conflict) as exc:
        pricing.set_scholarship(enr, "1499.99", reason="Hardship", now=NOW, actor=staff)
    assert "$1,500.00" in exc.value.message and "refund" in exc.value.message
    assert pricing.scholarship_of(enr) is None
    pricing.set_scholarship(enr, "1500", reason="Hardship", now=NOW, actor=staff)
    assert pricing.quote(enr).balance == 0


def test_price_balance_and_audit_follow(setup, db):
    _c, enr, staff = setup
    _paid(enr, 50000)
    pricing.set_scholarship(enr, "2500.00", reason="Community scholarship", now=NOW, actor=staff)
    q = pricing.quote(enr)
    assert (q.list_price, q.base_price, q.total, q.balance) == (400000, 250000, 250000, 200000)
    assert checkout.amount_due(enr, PaymentKind.BALANCE) == 200000
    pricing.set_scholarship(enr, "3000.00", reason="Revised", now=NOW, actor=staff)
    assert pricing.quote(enr).balance == 250000
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "payments.scholarship_set")
                                .order_by(AuditEvent.id)).all()
    assert [(e.details["previous_price_minor"], e.details["price_minor"], e.details["reason"]) for e in events] == \
        [(400000, 250000, "Community scholarship"), (250000, 300000, "Revised")]
    assert pricing.scholarship_of(enr).reason == "Revised"


def test_installments_still_due_shrink_to_the_new_balance(setup, db):
    _c, enr, staff = setup
    _paid(enr, 50000)
    for seq, amount in ((1, 175000), (2, 175000)):
        db.session.add(Installment(enrollment_id=enr.id, seq=seq, due_on=date(2027, seq, 1), amount_minor=amount,
                                   currency="USD", created_at=NOW, updated_at=NOW))
    db.session.flush()
    pricing.set_scholarship(enr, "2000.00", reason="Hardship", now=NOW, actor=staff)
    # 150,000 left of a 350,000 plan: the next installment asks only for what is still owed
    assert checkout.amount_due(enr, PaymentKind.INSTALLMENT) == 150000
    _paid(enr, 150000, ref="pi_test_2")
    assert checkout.amount_due(enr, PaymentKind.INSTALLMENT) == 0 and pricing.quote(enr).balance == 0


def test_refunds_follow_what_was_paid_after_a_scholarship(setup, db):
    _c, enr, staff = setup
    _paid(enr, 250000)
    pricing.set_scholarship(enr, "2500.00", reason="Hardship", now=NOW, actor=staff)
    assert refunds.refundable(enr) == 250000
    assert refunds.policy_amount(enr, NOW) == 250000  # 100 % band: everything paid, not the list price
