"""Discounts, scholarships and rounding (JPY and USD); the refund schedule at each boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retreat.core.errors import Conflict, ValidationFailed
from retreat.money import format_money
from retreat.payments import pricing, refund_policy
from retreat.payments.models import DiscountCode, RedemptionStatus
from tests import factories
from tests import factories_cohorts as fc

NOW = fc.NOW


def _code(db, code="SPRING15", **kw):
    kw.setdefault("kind", "percent")
    if kw["kind"] == "percent":
        kw.setdefault("percent", 15)
    row = DiscountCode(code=code, **kw)
    db.session.add(row)
    db.session.flush()
    return row


@pytest.mark.parametrize("currency,price,expected_discount,shown", [
    ("JPY", 123457, 18519, "¥104,938"),  # 18,518.55 yen rounds half up to a whole yen
    ("USD", 123457, 18519, "$1,049.38"),  # 185.1855 dollars -> $185.19
    ("JPY", 10, 2, "¥8"),  # 1.5 -> 2
])
def test_percent_discount_rounds_to_whole_minor_units(db, currency, price, expected_discount, shown):
    c = fc.cohort(currency=currency, price_minor=price, deposit_minor=1)
    enr = fc.applicant(c)
    _code(db)
    red = pricing.redeem_code(enr, " spring15 ", now=NOW, actor=None)
    q = pricing.quote(enr)
    assert red.amount_minor == expected_discount == q.discount
    assert q.total == price - expected_discount
    assert format_money(q.total, currency) == shown


def test_fixed_discount_must_match_currency_and_is_capped(db):
    c = fc.cohort(currency="JPY", price_minor=5000, deposit_minor=1000)
    _code(db, "TENK", kind="fixed", amount_minor=10000, currency="JPY")
    _code(db, "USD50", kind="fixed", amount_minor=5000, currency="USD")
    enr = fc.applicant(c)
    with pytest.raises(ValidationFailed, match="JPY|USD"):
        pricing.redeem_code(enr, "USD50", now=NOW, actor=None)
    pricing.redeem_code(enr, "TENK", now=NOW, actor=None)
    q = pricing.quote(enr)
    assert (q.total, q.deposit) == (0, 0)


def test_code_limits_dates_and_cohort_restriction(db):
    c, other = fc.cohort(), fc.cohort()
    _code(db, "ONCE", max_uses=1)
    _code(db, "LATER", valid_from=NOW + timedelta(days=1))
    _code(db, "OVER", valid_until=NOW)
    _code(db, "OTHER", cohort_id=other.id)
    _code(db, "OFF", is_active=False)
    a, b = fc.applicant(c), fc.applicant(c)
    pricing.redeem_code(a, "ONCE", now=NOW, actor=None)
    for code, msg in (("ONCE", "used up"), ("LATER", "not valid yet"), ("OVER", "expired"),
                      ("OTHER", "not valid for this cohort"), ("OFF", "not valid"), ("NOPE", "not valid"),
                      ("", "Enter")):
        with pytest.raises(ValidationFailed, match=msg):
            pricing.redeem_code(b, code, now=NOW, actor=None)
    with pytest.raises(Conflict, match="already applied"):
        pricing.redeem_code(a, "LATER", now=NOW + timedelta(days=2), actor=None)
    assert pricing.quote(b).discount == 0


def test_healthcare_professional_discount_waits_for_staff_approval(db):
    c = fc.cohort(price_minor=200000, deposit_minor=50000)
    _code(db, "HCP", percent=20, requires_approval=True)
    enr = fc.applicant(c)
    with pytest.raises(ValidationFailed, match="licence"):
        pricing.redeem_code(enr, "HCP", now=NOW, actor=None)
    red = pricing.redeem_code(enr, "HCP", now=NOW, actor=None, evidence="RN 12345 CO")
    assert red.status == RedemptionStatus.PENDING_APPROVAL and pricing.quote(enr).total == 200000
    staff = factories.user("finance", password=None)
    pricing.decide_redemption(red, approve=True, now=NOW, actor=staff)
    pricing.decide_redemption(red, approve=True, now=NOW, actor=staff)  # repeat: no-op
    assert pricing.quote(enr).total == 160000
    with pytest.raises(Conflict):
        pricing.decide_redemption(red, approve=False, now=NOW, actor=staff)


def test_scholarship_sets_the_price_for_one_enrollment(db):
    c = fc.cohort(price_minor=450000, deposit_minor=50000)
    enr, other = fc.applicant(c), fc.applicant(c)
    staff = factories.user("finance", password=None)
    with pytest.raises(ValidationFailed):
        pricing.set_scholarship(enr, "5000", reason="need", now=NOW, actor=staff)
    with pytest.raises(ValidationFailed):
        pricing.set_scholarship(enr, "100", reason=" ", now=NOW, actor=staff)
    pricing.set_scholarship(enr, "300.00", reason="Community scholarship", now=NOW, actor=staff)
    assert pricing.quote(enr).total == 30000 and pricing.quote(enr).deposit == 30000
    assert pricing.quote(other).total == 450000


@pytest.mark.parametrize("offset,expected", [
    (timedelta(days=60), 100),
    (timedelta(days=60) - timedelta(seconds=1), 50),
    (timedelta(days=30), 50),
    (timedelta(days=30) - timedelta(seconds=1), 0),
    (timedelta(days=200), 100),
    (timedelta(0), 0),
])
def test_default_refund_schedule_at_each_boundary(db, offset, expected):
    c = fc.cohort()
    assert refund_policy.policy_percent(c, c.starts_at - offset) == expected


def test_configured_refund_schedule(db):
    c = fc.cohort()
    refund_policy.set_schedule(c, [(90, 100), (45, 75), (14, 25)])
    assert refund_policy.policy_percent(c, c.starts_at - timedelta(days=90)) == 100
    assert refund_policy.policy_percent(c, c.starts_at - timedelta(days=45)) == 75
    assert refund_policy.policy_percent(c, c.starts_at - timedelta(days=14)) == 25
    assert refund_policy.policy_percent(c, c.starts_at - timedelta(days=13, hours=23)) == 0
    with pytest.raises(ValidationFailed):
        refund_policy.set_schedule(c, [(10, 120)])


def test_installment_split_in_whole_units():
    from datetime import date

    from retreat.payments.checkout import plan_schedule

    rows = plan_schedule(1000, 3, today=date(2026, 1, 1), due_on=date(2026, 4, 1))
    assert [a for _, a in rows] == [334, 333, 333] and sum(a for _, a in rows) == 1000
    assert rows[-1][0] == date(2026, 4, 1) and rows[0][0] == date(2026, 1, 31)
    with pytest.raises(ValidationFailed):
        plan_schedule(1000, 0, today=date(2026, 1, 1), due_on=date(2026, 4, 1))
