"""Waitlist: automatic offers by email, expiry and decline move on, pairs only together."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import DepositTiming, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.errors import Conflict
from retreat.models import OutboxMessage
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def _offers(enr):
    return list(db_scalars(select(OutboxMessage).where(OutboxMessage.template == "waitlist_offer",
                                                       OutboxMessage.recipient_user_id == enr.participant_id)))


def db_scalars(stmt):
    from retreat.extensions import db

    return db.session.scalars(stmt)


def _full(capacity=1, **kw):
    """A cohort whose seats are all confirmed; returns (cohort, seat holders)."""
    c = fc.cohort(capacity=capacity, **kw)
    holders = []
    for _ in range(capacity):
        e = fc.cleared(c)
        seats.take_hold(e, now=NOW, actor=None)
        enrollment.confirm_seat(e, now=NOW, actor=None)
        holders.append(e)
    return c, holders


def test_full_cohort_application_joins_waitlist_in_order(db):
    c, _ = _full(1)
    a, b = fc.applicant(c), fc.applicant(c)
    assert (seats.place(a), seats.place(b)) == (1, 2)


def test_freed_seat_is_offered_by_email_and_accepting_holds_it(db):
    c, (holder,) = _full(1)
    a, b = fc.applicant(c), fc.applicant(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    assert a.seat == SeatState.OFFERED and a.offer_expires_at == NOW + timedelta(hours=48)
    assert b.seat == SeatState.NONE
    (msg,) = _offers(a)
    assert msg.context["cohort_title"] == c.title and f"/me/enrollments/{a.id}" in msg.context["url"]
    out = seats.accept_offer(a, now=NOW + timedelta(hours=1), actor=a.participant)
    assert out.result == "held" and a.seat == SeatState.HELD and not a.is_waitlisted
    enrollment.confirm_seat(a, now=NOW + timedelta(hours=1), actor=None)
    assert c.seats_taken == 1 == seats.count_taken(c.id)


def test_offer_expiry_moves_on_and_expired_offer_cannot_be_accepted(db):
    c, (holder,) = _full(1)
    a, b = fc.applicant(c), fc.applicant(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    assert enrollment.sweep_expired_offers(NOW + timedelta(hours=47)) == 0
    assert enrollment.sweep_expired_offers(NOW + timedelta(hours=48)) == 1
    assert a.status == S.OFFER_EXPIRED and a.seat == SeatState.NONE
    assert b.seat == SeatState.OFFERED and len(_offers(b)) == 1
    with pytest.raises(Conflict, match="expired"):
        seats.accept_offer(a, now=NOW + timedelta(hours=49), actor=a.participant)
    assert c.seats_taken == 1 and b.seat == SeatState.OFFERED


def test_accepting_after_expiry_before_sweep_is_refused(db):
    c, (holder,) = _full(1)
    a = fc.applicant(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    with pytest.raises(Conflict, match="expired"):
        seats.accept_offer(a, now=NOW + timedelta(hours=49), actor=a.participant)
    assert a.seat == SeatState.OFFERED


def test_decline_moves_on(db):
    c, (holder,) = _full(1)
    a, b = fc.applicant(c), fc.applicant(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    enrollment.decline_offer(a, now=NOW, actor=a.participant)
    assert a.status == S.WITHDRAWN and b.seat == SeatState.OFFERED


def test_pair_is_offered_only_together(db):
    c, holders = _full(2)
    first = fc.applicant(c, email="ana@example.com", partner_email="ben@example.com")
    second = fc.applicant(c, email="ben@example.com")
    single = fc.applicant(c)
    assert first.party_id is not None and first.party_id == second.party_id
    enrollment.withdraw(holders[0], now=NOW, actor=None)
    # one seat: the pair keeps its place, the single behind it is offered the seat
    assert first.seat == SeatState.NONE and second.seat == SeatState.NONE
    assert single.seat == SeatState.OFFERED
    enrollment.decline_offer(single, now=NOW, actor=None)
    enrollment.withdraw(holders[1], now=NOW, actor=None)
    # two seats: both partners at once
    assert first.seat == SeatState.OFFERED and second.seat == SeatState.OFFERED
    assert c.seats_taken == 2 == seats.count_taken(c.id)


def test_only_cleared_people_are_offered_when_clearance_comes_first(db):
    c, (holder,) = _full(1, deposit_timing=DepositTiming.AFTER_CLEARANCE)
    not_yet = fc.applicant(c)
    ready = fc.cleared(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    assert not_yet.seat == SeatState.NONE and ready.seat == SeatState.OFFERED


def test_clearance_of_a_waiting_person_triggers_offer_of_a_free_seat(db):
    c, (holder,) = _full(1, deposit_timing=DepositTiming.AFTER_CLEARANCE)
    waiting = fc.applicant(c)
    enrollment.withdraw(holder, now=NOW, actor=None)
    assert waiting.seat == SeatState.NONE
    enrollment.submit_intake(waiting, now=NOW, actor=None)
    enrollment.request_clearance(waiting, now=NOW, actor=None)
    enrollment.mark_cleared(waiting, now=NOW, actor=None)
    assert waiting.seat == SeatState.OFFERED


def test_facilitator_reorders_and_removes(db):
    c, (holder,) = _full(1)
    a, b, d = fc.applicant(c), fc.applicant(c), fc.applicant(c)
    seats.move(d, "up", now=NOW, actor=holder.participant)
    fc.new_request()  # each action is its own request (and takes its own row locks)
    assert [e.id for e in seats.entries(c.id)] == [a.id, d.id, b.id]
    enrollment.remove_from_waitlist(a, now=NOW, actor=holder.participant, reason="Asked by phone to be removed")
    assert a.status == S.DECLINED
    assert seats.place(d) == 1
    enrollment.leave_waitlist(d, now=NOW, actor=d.participant)
    assert seats.place(b) == 1 and d.status == S.WITHDRAWN


def test_expired_hold_sweep_offers_the_seat_to_the_waitlist(db):
    c = fc.cohort(capacity=1, hold_minutes=30)
    payer = fc.applicant(c)
    seats.take_hold(payer, now=NOW, actor=None)
    waiting = fc.applicant(c)
    assert waiting.is_waitlisted
    assert seats.sweep_expired_holds(NOW + timedelta(minutes=31)) == 1
    assert payer.seat == SeatState.NONE and waiting.seat == SeatState.OFFERED
    assert c.seats_taken == 1 == seats.count_taken(c.id)
    assert len(_offers(waiting)) == 1
