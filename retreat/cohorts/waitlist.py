"""The waitlist: ordered, with automatic time-limited offers when seats free up.

An offer reserves the seat (it counts in ``seats_taken``) until ``offer_expires_at``. The next
eligible person is offered a free seat (eligible = still active and, when the cohort requires
clearance before the deposit, cleared). Two people who applied together are offered seats only
together: a pair is skipped while fewer than two seats are free, and keeps its place.
On expiry (``sweep_expired_offers``) or decline the seat moves on to the next person.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from retreat.accounts.models import User
from retreat.cohorts import seats
from retreat.cohorts.models import Cohort, Enrollment, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core import jobs, urls
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.timeutil import format_local

ELIGIBLE_ANY = frozenset({S.APPLIED, S.INTAKE_SUBMITTED, S.CLEARANCE_PENDING, S.CLEARED})


def join(cohort: Cohort, enr: Enrollment, *, now: datetime, actor: User | None, reason: str) -> int:
    """Put ``enr`` at the end of the waitlist (cohort locked). Returns their place in line."""
    if enr.waitlist_position is None:
        last = db.session.scalar(select(func.max(Enrollment.waitlist_position)).where(
            Enrollment.cohort_id == cohort.id)) or 0
        enr.waitlist_position = last + 1
        enr.waitlisted_at = now
        seats.log(enr, "waitlisted", now=now, actor=actor, reason=reason)
    return place(enr)


def place(enr: Enrollment) -> int:
    """1-based place in line (counting only people still waiting)."""
    if enr.waitlist_position is None:
        return 0
    ahead = db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == enr.cohort_id, Enrollment.waitlist_position.is_not(None),
        Enrollment.waitlist_position < enr.waitlist_position)) or 0
    return ahead + 1


def places(cohort_id: int) -> dict[int, int]:
    """``place`` of everyone waiting in a cohort, in one query (rosters)."""
    rows = db.session.scalars(select(Enrollment.id).where(
        Enrollment.cohort_id == cohort_id, Enrollment.waitlist_position.is_not(None))
        .order_by(Enrollment.waitlist_position, Enrollment.id))
    return {enr_id: n for n, enr_id in enumerate(rows, start=1)}


def entries(cohort_id: int) -> list[Enrollment]:
    return list(db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort_id, Enrollment.waitlist_position.is_not(None))
        .order_by(Enrollment.waitlist_position, Enrollment.id)))


def is_eligible(cohort: Cohort, enr: Enrollment) -> bool:
    if cohort.requires_clearance_before_deposit:
        return enr.status == S.CLEARED
    return enr.status in ELIGIBLE_ANY


def _units(cohort: Cohort, waiting: list[Enrollment]) -> list[list[Enrollment]]:
    """Waiting people in order, a pair as one unit at its first member's place."""
    seen: set[int] = set()
    units = []
    for enr in waiting:
        if enr.id in seen:
            continue
        unit = [enr]
        if enr.party_id is not None:
            unit += [o for o in waiting if o.party_id == enr.party_id and o.id != enr.id]
        seen.update(e.id for e in unit)
        units.append(unit)
    return units


def offer_free_seats(cohort: Cohort, *, now: datetime) -> list[Enrollment]:
    """Offer every free seat to the next eligible people in line (cohort locked)."""
    free = cohort.capacity - cohort.seats_taken
    if free <= 0:
        return []
    waiting = list(db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.waitlist_position.is_not(None),
        Enrollment.seat == SeatState.NONE.value)
        .order_by(Enrollment.waitlist_position, Enrollment.id).with_for_update()))
    offered: list[Enrollment] = []
    for unit in _units(cohort, waiting):
        if free <= 0:
            break
        if len(unit) > free or not all(is_eligible(cohort, e) for e in unit):
            continue
        for enr in unit:
            _offer(cohort, enr, now=now)
            offered.append(enr)
        free -= len(unit)
    return offered


def _offer(cohort: Cohort, enr: Enrollment, *, now: datetime) -> None:
    seats.occupy(cohort, enr, SeatState.OFFERED)
    hours = cohort.offer_hours or 48
    enr.offer_expires_at = now + timedelta(hours=hours)
    enr.offers_made += 1
    seats.log(enr, "offer_sent", now=now, actor=None,
              reason=f"A seat was offered from the waitlist, held for {hours} hours")
    person = enr.participant
    outbox.enqueue(
        template="waitlist_offer", dedupe_key=f"waitlist-offer-{enr.id}-{enr.offers_made}", to_user=person,
        group_key=f"enrollment:{enr.id}", now=now,
        context={"participant_name": person.name, "cohort_title": cohort.title,
                 "retreat_title": cohort.retreat.title, "hours": hours,
                 "expires_local": format_local(enr.offer_expires_at, person.tz),
                 "together": enr.party_id is not None,
                 "url": f"{urls.base_url()}/me/enrollments/{enr.id}"})


def accept_offer(enr: Enrollment, *, now: datetime, actor: User | None) -> seats.HoldOutcome:
    """Accepting turns the offer into a seat hold for the deposit."""
    if enr.seat != SeatState.OFFERED:
        if enr.status == S.OFFER_EXPIRED:
            raise Conflict("This waitlist offer has expired, so the seat was offered to the next person.")
        if enr.seat in (SeatState.HELD, SeatState.CONFIRMED):
            return seats.take_hold(enr, now=now, actor=actor)
        raise Conflict("There is no open offer on this application.")
    return seats.take_hold(enr, now=now, actor=actor)


def decline_offer(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    """Declining an offer withdraws the application; the seat moves on."""
    from retreat.cohorts import enrollment

    if enr.seat != SeatState.OFFERED:
        raise Conflict("There is no open offer on this application.")
    return enrollment.withdraw(enr, now=now, actor=actor, reason="Declined the waitlist offer")


def leave(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    from retreat.cohorts import enrollment

    if not enr.is_waitlisted:
        raise Conflict("You are not on the waitlist for this cohort.")
    return enrollment.withdraw(enr, now=now, actor=actor, reason="Left the waitlist")


def remove(enr: Enrollment, *, now: datetime, actor: User, reason: str) -> bool:
    """A facilitator takes someone off the waitlist (the application is declined, with a reason)."""
    from retreat.cohorts import enrollment

    if not enr.is_waitlisted:
        raise Conflict("This person is not on the waitlist.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for removing this person from the waitlist.", field="reason")
    return enrollment.decline(enr, now=now, actor=actor, reason=f"Removed from the waitlist: {reason}")


def move(enr: Enrollment, direction: str, *, now: datetime, actor: User) -> bool:
    """Swap places with the neighbour above ("up") or below ("down")."""
    if direction not in ("up", "down"):
        raise ValidationFailed("Choose up or down.", field="direction")
    cohort = seats.lock_cohort(enr.cohort_id)
    enr = seats.lock_enrollment(enr.id)
    if not enr.is_waitlisted:
        raise Conflict("This person is not on the waitlist.")
    q = select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.waitlist_position.is_not(None))
    if direction == "up":
        q = q.where(Enrollment.waitlist_position < enr.waitlist_position).order_by(
            Enrollment.waitlist_position.desc())
    else:
        q = q.where(Enrollment.waitlist_position > enr.waitlist_position).order_by(Enrollment.waitlist_position)
    other = db.session.scalar(q.limit(1).with_for_update())
    if other is None:
        return False
    enr.waitlist_position, other.waitlist_position = other.waitlist_position, enr.waitlist_position
    seats.log(enr, "waitlist_moved", now=now, actor=actor, reason=f"Moved {direction} the waitlist")
    db.session.flush()
    return True


def sweep_expired_offers(now: datetime) -> int:
    """Scheduler job: expire offers past their time and offer the seats to the next people.

    The caller (job wrapper) commits once. Returns how many offers expired.
    """
    from retreat.cohorts import enrollment

    rows = list(db.session.execute(select(Enrollment.id, Enrollment.cohort_id).where(
        Enrollment.seat == SeatState.OFFERED.value, Enrollment.offer_expires_at <= now)
        .order_by(Enrollment.cohort_id, Enrollment.id)))
    n = 0
    for enr_id, cohort_id in rows:
        seats.lock_cohort(cohort_id)
        enr = seats.lock_enrollment(enr_id)
        if enr.seat != SeatState.OFFERED or enr.offer_expires_at is None or enr.offer_expires_at > now:
            continue  # accepted or handled by someone else meanwhile
        person = enr.participant
        enrollment.transition(enr, S.OFFER_EXPIRED, now=now, actor=None,
                              reason="The waitlist offer was not taken up in time")
        outbox.enqueue(template="waitlist_offer_expired", dedupe_key=f"waitlist-expired-{enr.id}", to_user=person,
                       now=now, context={"participant_name": person.name, "cohort_title": enr.cohort.title,
                                         "retreat_title": enr.cohort.retreat.title,
                                         "url": f"{urls.base_url()}/retreats"})
        n += 1
    return n


jobs.register("waitlist.expire_offers", sweep_expired_offers, seconds=60)
