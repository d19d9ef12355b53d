"""Refund tiers: validated (blanks ignored, no duplicate days, more days never refund less, 0-100 %,
at least one); the public text is written from the tiers; an enrollment keeps the tiers in force
when it applied."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retreat.core.errors import ValidationFailed
from retreat.payments import ledger, refund_policy, refunds
from retreat.payments.models import LedgerType
from tests import factories_cohorts as fc

NOW = fc.NOW


@pytest.mark.parametrize("rows,message", [
    ([(None, None)] * 5, "at least one refund tier"),
    ([(60, 100), (60, 50)], "same number of days (60)"),
    ([(60, 50), (30, 100)], "never refunds less: 60 days before gives 50 % but 30 days before gives 100 %"),
    ([(60, 101)], "between 0 and 100"),
    ([(-1, 50)], "between 0 and 730"),
    ([(60, None)], "Refund tier 1: enter both"),
])
def test_bad_tiers_are_refused(rows, message):
    with pytest.raises(ValidationFailed) as exc:
        refund_policy.check_tiers(rows)
    assert message in exc.value.message and exc.value.field == "tiers"


def test_blank_rows_are_ignored_and_tiers_sorted():
    assert refund_policy.check_tiers([(None, None), (14, 25), (None, None), (90, 100), (45, 60)]) == \
        [(90, 100), (45, 60), (14, 25)]


def test_text_equals_the_tiers():
    assert refund_policy.policy_text([(30, 50), (60, 100)]) == (
        "Withdraw 60 days or more before the start: 100 % of what you paid is refunded; withdraw 30 days or "
        "more before the start: 50 % of what you paid is refunded; withdraw later than 30 days before the "
        "start: no refund. If you are not medically cleared, or the practice cancels, everything you paid "
        "is refunded.")
    assert "up to the start: 10 %" in refund_policy.policy_text([(0, 10)])


def test_an_enrollment_keeps_the_tiers_in_force_when_it_applied(db):
    c = fc.cohort(price_minor=400000, deposit_minor=100000)
    refund_policy.set_schedule(c, [(90, 100), (45, 80)])
    early = fc.applicant(c)
    refund_policy.set_schedule(c, [(10, 20)])
    late = fc.applicant(c)
    assert early.refund_schedule == [[90, 100], [45, 80]] and late.refund_schedule == [[10, 20]]
    # 50 days before the start: the early applicant's 45-day tier gives 80 %; the late one's 10-day tier 20 %
    at = c.starts_at - timedelta(days=50)
    for enr, ref in ((early, "pi_tiers_1"), (late, "pi_tiers_2")):
        ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=100000, currency="USD",
                      object_id=ref, now=NOW)
    assert refunds.policy_amount(early, at) == 80000
    assert refunds.policy_amount(late, at) == 20000
    assert refunds.withdrawal_quote(early, at)["percent"] == 80
    assert refund_policy.enrollment_policy_text(early) == refund_policy.policy_text([(90, 100), (45, 80)])
    assert refund_policy.cohort_policy_text(c) == refund_policy.policy_text([(10, 20)])


def test_a_cohort_without_tiers_gets_the_default_snapshot(db):
    enr = fc.applicant(fc.cohort())
    assert enr.refund_schedule == [[60, 100], [30, 50]]
