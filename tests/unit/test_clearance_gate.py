"""Item 16: one rule "valid clearance on date D" (the cohort's local date), asked at the moment a
seat is confirmed or a deposit that needs clearance is taken, not trusted from a status a sweep
refreshes every few minutes."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retreat.cohorts import clearance_gate, enrollment, seats
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.cohorts.models import SeatState
from retreat.core.errors import Conflict
from retreat.payments import checkout as payments
from retreat.payments.models import Payment, PaymentKind
from tests import factories_clearance as fcl
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def _payments() -> int:
    return fc.db.session.scalar(select(func.count()).select_from(Payment))


def test_a_lapsed_clearance_the_sweep_has_not_seen_refuses_the_deposit_and_changes_nothing(db):
    s = fcl.setup(now=NOW)
    fcl.cleared(s, valid_until=(NOW + timedelta(days=10)).date())
    later = NOW + timedelta(days=12)
    assert s.enrollment.status == S.CLEARED  # the sweep (clearance.expire) has not run yet
    with pytest.raises(Conflict) as exc:
        payments.begin(s.enrollment, PaymentKind.DEPOSIT, now=later, actor=s.participant)
    assert "clearance lapsed" in exc.value.message and "valid until Wed 11 Mar 2026" in exc.value.message
    assert s.enrollment.seat == SeatState.NONE and s.cohort.seats_taken == 0 and _payments() == 0


def test_a_clearance_that_lapses_while_the_seat_is_held_does_not_confirm_it(db):
    s = fcl.setup(now=NOW)
    fcl.cleared(s, valid_until=(NOW + timedelta(days=10)).date())
    assert seats.take_hold(s.enrollment, now=NOW + timedelta(days=1), actor=None).result == "held"
    fc.new_request()
    with pytest.raises(Conflict) as exc:
        enrollment.confirm_seat(s.enrollment, now=NOW + timedelta(days=12), actor=None)
    assert "the seat can be confirmed: clearance lapsed" in exc.value.message
    assert s.enrollment.seat == SeatState.HELD and s.enrollment.status == S.CLEARED


def test_valid_on_the_cohorts_local_date_not_the_utc_date(db):
    s = fcl.setup(now=NOW)  # cohort in America/Denver
    fcl.cleared(s, valid_until=date(2026, 3, 10))
    evening = datetime(2026, 3, 11, 5, 0, tzinfo=UTC)  # 10 March, 23:00 in Denver; 11 March in UTC
    assert clearance_gate.verdict(s.enrollment, clearance_gate.cohort_today(s.cohort, evening)).ok
    assert not clearance_gate.verdict(s.enrollment, date(2026, 3, 11)).ok


def test_the_licence_is_checked_on_the_cohorts_date_at_decision_and_after(db):
    """Decided in Denver's evening of 1 March by a provider in Tokyo (already 2 March there), under
    a licence that expires on 1 March: valid that day, the same day for the decision and the gate."""
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    s = fcl.setup(now=now, provider_kw={"tz": "Asia/Tokyo", "license_expires": date(2026, 3, 1)})
    req = fcl.cleared(s)
    assert req.license_expires_on == date(2026, 3, 1) and s.enrollment.status == S.CLEARED
    assert clearance_gate.verdict(s.enrollment, clearance_gate.cohort_today(s.cohort, now)).ok


def test_a_decision_recorded_under_an_expired_licence_is_not_a_valid_clearance(db):
    c = fc.cohort()
    enr = fc.applicant(c)
    fc.record_clearance(enr, license_expires_on=NOW.date() - timedelta(days=1))
    v = clearance_gate.verdict(enr, NOW.date())
    assert not v.ok and v.key == clearance_gate.LICENCE
