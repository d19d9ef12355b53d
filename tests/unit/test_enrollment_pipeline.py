"""The enrollment state machine: every legal step, every illegal one, no-op repeats, who/when/why."""

from datetime import timedelta

import pytest

from retreat.cohorts import enrollment, seats
from retreat.cohorts.enrollment import ALLOWED
from retreat.cohorts.models import CohortStatus, DepositTiming, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.errors import Conflict, ValidationFailed
from tests import factories
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW

# The path to reach each status from "applied" (after-clearance cohort, so the pipeline is linear).
PATH = [S.INTAKE_SUBMITTED, S.CLEARANCE_PENDING, S.CLEARED, S.DEPOSIT_PAID, S.BALANCE_PAID, S.ATTENDED,
        S.COMPLETED]


def _reach(db, status):
    c = fc.cohort(deposit_timing=DepositTiming.AFTER_CLEARANCE)
    enr = fc.applicant(c)
    fc.record_clearance(enr)  # the provider's decision the clearance gate reads before the deposit
    for step in PATH:
        if enr.status == status:
            break
        if step == S.DEPOSIT_PAID:
            assert seats.take_hold(enr, now=NOW, actor=None).result == "held"
            enrollment.confirm_seat(enr, now=NOW, actor=None)
        else:
            enrollment.transition(enr, step, now=NOW, actor=None, reason="test")
    assert enr.status == status
    return enr


def test_happy_path_records_who_when_why(db):
    facilitator = factories.user("facilitator")
    c = fc.cohort(deposit_timing=DepositTiming.AFTER_CLEARANCE)
    enr = fc.applicant(c)
    fc.record_clearance(enr)
    assert enrollment.submit_intake(enr, now=NOW, actor=enr.participant)
    assert enrollment.request_clearance(enr, now=NOW, actor=None)
    assert enrollment.mark_cleared(enr, now=NOW + timedelta(hours=1), actor=None, reason="Dr. P cleared")
    assert seats.take_hold(enr, now=NOW, actor=enr.participant).result == "held"
    assert enrollment.confirm_seat(enr, now=NOW, actor=None)
    assert enr.status == S.DEPOSIT_PAID and enr.seat == SeatState.CONFIRMED
    assert enrollment.mark_balance_paid(enr, now=NOW, actor=None)
    assert enrollment.mark_attended(enr, now=NOW, actor=facilitator)
    assert enrollment.mark_completed(enr, now=NOW, actor=facilitator)
    db.session.flush()
    db.session.expire_all()
    statuses = [t.to_status for t in enr.transitions if t.from_status != t.to_status]
    assert statuses == ["applied", "intake_submitted", "clearance_pending", "cleared", "deposit_paid",
                        "balance_paid", "attended", "completed"]
    cleared = next(t for t in enr.transitions if t.to_status == "cleared")
    assert cleared.reason == "Dr. P cleared" and cleared.at == NOW + timedelta(hours=1)
    assert enr.transitions[-1].actor_id == facilitator.id
    assert c.seats_taken == 1 == seats.count_taken(c.id)


@pytest.mark.parametrize("start", list(ALLOWED))
def test_every_illegal_transition_raises_and_changes_nothing(db, start):
    if start in enrollment.EXITS:
        enr = _reach(db, S.CLEARANCE_PENDING)
        enrollment.transition(enr, start, now=NOW, actor=None, reason="x")
    else:
        enr = _reach(db, start)
    before = len(enr.transitions)
    for target in S:
        if target == start or target in ALLOWED[start]:
            continue
        with pytest.raises(Conflict):
            enrollment.transition(enr, target, now=NOW, actor=None)
        assert enr.status == start
    db.session.flush()
    db.session.expire_all()
    assert len(enr.transitions) == before


@pytest.mark.parametrize("start", [s for s in ALLOWED if ALLOWED[s]])
def test_every_legal_transition_moves_and_repeat_is_noop(db, start):
    for target in ALLOWED[start]:
        enr = _reach(db, start)
        assert enrollment.transition(enr, target, now=NOW, actor=None, reason="why") is True
        assert enr.status == target
        n = len(enr.transitions)
        assert enrollment.transition(enr, target, now=NOW, actor=None) is False
        db.session.flush()
        db.session.expire_all()
        assert len(enr.transitions) == n


def test_exit_frees_seat_and_cancels_reminders(db):
    c = fc.cohort(capacity=2)
    enr = fc.applicant(c)
    seats.take_hold(enr, now=NOW, actor=None)
    enrollment.confirm_seat(enr, now=NOW, actor=None)
    assert c.seats_taken == 1
    from retreat.messaging import outbox

    assert outbox.pending_for_group(f"enrollment:{enr.id}")
    enrollment.withdraw(enr, now=NOW, actor=enr.participant, reason="Family emergency")
    assert enr.status == S.WITHDRAWN and enr.seat == SeatState.NONE
    assert c.seats_taken == 0 == seats.count_taken(c.id)
    assert outbox.pending_for_group(f"enrollment:{enr.id}") == []
    assert enr.transitions[-1].reason == "Family emergency"


def test_deposit_before_clearance_then_cleared_moves_to_deposit_paid(db):
    c = fc.cohort(deposit_timing=DepositTiming.BEFORE_CLEARANCE)
    enr = fc.applicant(c)
    seats.take_hold(enr, now=NOW, actor=None)
    enrollment.confirm_seat(enr, now=NOW, actor=None)
    assert enr.status == S.APPLIED and enr.seat == SeatState.CONFIRMED
    enrollment.submit_intake(enr, now=NOW, actor=None)
    enrollment.request_clearance(enr, now=NOW, actor=None)
    enrollment.mark_cleared(enr, now=NOW, actor=None)
    assert enr.status == S.DEPOSIT_PAID


def test_not_cleared_after_deposit_frees_the_seat(db):
    c = fc.cohort(deposit_timing=DepositTiming.BEFORE_CLEARANCE, capacity=1)
    enr = fc.applicant(c)
    seats.take_hold(enr, now=NOW, actor=None)
    enrollment.confirm_seat(enr, now=NOW, actor=None)
    enrollment.submit_intake(enr, now=NOW, actor=None)
    enrollment.request_clearance(enr, now=NOW, actor=None)
    enrollment.mark_not_cleared(enr, now=NOW, actor=None)
    assert enr.status == S.NOT_CLEARED and c.seats_taken == 0


def test_deposit_waits_for_clearance_when_cohort_requires_it(db):
    c = fc.cohort(deposit_timing=DepositTiming.AFTER_CLEARANCE)
    enr = fc.applicant(c)
    with pytest.raises(Conflict, match="clearance"):
        seats.take_hold(enr, now=NOW, actor=None)
    with pytest.raises(Conflict):
        enrollment.confirm_seat(enr, now=NOW, actor=None)
    assert c.seats_taken == 0 and enr.seat == SeatState.NONE


def test_applying_twice_or_to_closed_cohort_is_refused(db):
    c = fc.cohort()
    enr = fc.applicant(c)
    with pytest.raises(Conflict, match="already applied"):
        enrollment.apply(c, enr.participant, now=NOW)
    closed = fc.cohort(status=CohortStatus.CLOSED)
    with pytest.raises(Conflict, match="not accepting"):
        enrollment.apply(closed, enr.participant, now=NOW)
    started = fc.cohort(starts_at=NOW - timedelta(days=1))
    with pytest.raises(Conflict, match="not accepting"):
        enrollment.apply(started, enr.participant, now=NOW)
    with pytest.raises(ValidationFailed):
        enrollment.apply(fc.cohort(), enr.participant, now=NOW, motivation="x" * 2001)


def test_decline_needs_reason(db):
    c = fc.cohort()
    enr = fc.applicant(c)
    with pytest.raises(ValidationFailed):
        enrollment.decline(enr, now=NOW, actor=None, reason="  ")
    assert enr.status == S.APPLIED
    enrollment.decline(enr, now=NOW, actor=None, reason="Not a fit for group work right now")
    assert enr.status == S.DECLINED


def test_tracker_steps(db):
    c = fc.cohort(deposit_timing=DepositTiming.AFTER_CLEARANCE)
    enr = fc.cleared(c)
    states = {s["status"]: s["state"] for s in enrollment.tracker_steps(enr)}
    assert states["applied"] == "done" and states["cleared"] == "current" and states["deposit_paid"] == "upcoming"
