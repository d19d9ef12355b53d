"""Seats: holds, waitlist offers and confirmed seats, counted on the locked cohort row; and the
waitlist itself.

The invariant: offered + held + confirmed seats never exceed a cohort's capacity, whatever the
concurrency. Every seat change goes through ``occupy``/``release`` here, with the cohort row
locked (``core.locking``; SQLite serialises writers with BEGIN IMMEDIATE). ``Cohort.seats_taken``
is the counter and the database CHECK ``seats_taken <= capacity`` is the backstop if a bug ever
skips the lock.

The waitlist is ordered, with automatic time-limited offers when seats free up. An offer reserves
the seat (it counts in ``seats_taken``) until ``offer_expires_at``. The next eligible person is
offered a free seat (eligible = still active and, when the cohort requires clearance before the
deposit, cleared). Two people who applied together are offered seats only together: a pair is
skipped while fewer than two seats are free, and keeps its place. On expiry or decline (status
transitions, in ``retreat.cohorts.enrollment``) the seat moves on to the next person.

Locks (``core.locking``, in its ``LOCK_ORDER``): the cohort first, then the enrollment the change
is about. The cohort row lock is what serialises a cohort's seats and waitlist: every write of
``seat``, ``hold_expires_at``, ``offer_expires_at`` and ``waitlist_position`` happens under it, so
the other enrollments a change touches (expired holds released, the people waiting offered a seat,
a neighbour in line) need no row lock of their own. A sweep over several cohorts locks them all
first, in ascending order. Never call Stripe or SMTP while holding these locks (email goes to the
outbox, in the same transaction). This module does not import the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from retreat.accounts.models import User
from retreat.cohorts import clearance_gate
from retreat.cohorts.models import (
    PRE_DEPOSIT,
    Cohort,
    CohortStatus,
    DepositTiming,
    Enrollment,
    EnrollmentStatus,
    EnrollmentTransition,
    SeatState,
)
from retreat.core import jobs, locking, urls
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox, webhooks
from retreat.timeutil import format_local

# Closed means "no new applications"; people already in the pipeline can still pay.
BOOKABLE = frozenset({CohortStatus.OPEN, CohortStatus.CLOSED})

LAST_SEAT_TAKEN = "The last seat was just taken; you are on the waitlist (position {position}). " \
                  "We will email you as soon as a seat frees up."
OFFER_EXPIRED = "This waitlist offer has expired, so the seat was offered to the next person."
NO_OFFER = "There is no open offer on this application."


@dataclass(frozen=True)
class HoldOutcome:
    """What happened when someone asked for a seat: ``held``, ``confirmed`` or ``waitlisted``."""

    result: str
    enrollment: Enrollment
    message: str


# --------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------


def lock_cohort(cohort_id: int) -> Cohort:
    row = locking.lock(Cohort, cohort_id)
    if row is None:
        raise NotFound("No such cohort.")
    return row


def lock_enrollment(enrollment_id: int) -> Enrollment:
    row = locking.lock(Enrollment, enrollment_id)
    if row is None:
        raise NotFound("No such enrollment.")
    return row


# --------------------------------------------------------------------------------------------
# Seat accounting
# --------------------------------------------------------------------------------------------
_SAME = object()


def log(enr: Enrollment, event: str, *, now: datetime, actor: User | None, reason: str = "",
        from_status: str | None | object = _SAME, to_status: str | None = None) -> EnrollmentTransition:
    """Write the who/when/why row; seat events keep the status (from == to)."""
    row = EnrollmentTransition(enrollment_id=enr.id, at=now, actor_id=actor.id if actor else None, event=event,
                               from_status=enr.status if from_status is _SAME else from_status,
                               to_status=to_status or enr.status,
                               reason=reason)
    db.session.add(row)
    if row.from_status != row.to_status:
        _emit_status_changed(enr, row, now)
    return row


# A decision of the medical provider is not the practice's integrators' business: "not cleared"
# goes out as "closed", like other endings whose reason stays inside.
_PUBLIC_STATUS = {"not_cleared": "closed"}


def _emit_status_changed(enr: Enrollment, row: EnrollmentTransition, now: datetime) -> None:
    person = enr.participant
    webhooks.emit("enrollment.status_changed", {
        "enrollment_id": enr.id, "cohort_id": enr.cohort_id,
        "participant_id": enr.participant_id, "participant_name": person.name if person else None,
        "participant_email": person.email if person else None,
        "previous_status": _PUBLIC_STATUS.get(row.from_status, row.from_status) if row.from_status else None,
        "status": _PUBLIC_STATUS.get(row.to_status, row.to_status)}, now=now)


def occupy(cohort: Cohort, enr: Enrollment, state: SeatState) -> bool:
    """Give ``enr`` a seat in ``state`` (cohort locked). False when no seat is free."""
    if enr.seat != SeatState.NONE:
        enr.seat = state.value
        return True
    if cohort.seats_taken >= cohort.capacity:
        return False
    cohort.seats_taken += 1
    enr.seat = state.value
    return True


def release(cohort: Cohort, enr: Enrollment) -> bool:
    """Free ``enr``'s seat, whatever its state (cohort locked)."""
    enr.hold_expires_at = None
    enr.offer_expires_at = None
    if enr.seat == SeatState.NONE:
        return False
    cohort.seats_taken -= 1
    enr.seat = SeatState.NONE.value
    return True


def count_taken(cohort_id: int) -> int:
    """Recount from the enrollments (the counter must always agree; tests check it)."""
    return db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == cohort_id, Enrollment.seat != SeatState.NONE.value)) or 0


def can_pay_deposit(cohort: Cohort, enr: Enrollment) -> bool:
    """Whether the enrollment has reached the deposit step of its cohort (and so may be offered
    a seat from the waitlist). Not while a screening fee is unpaid (the application is not submitted)."""
    if enr.screening_fee_due:
        return False
    if cohort.deposit_timing == DepositTiming.AFTER_CLEARANCE:
        return enr.status == EnrollmentStatus.CLEARED
    return enr.status in PRE_DEPOSIT


def needs_clearance(cohort: Cohort) -> bool:
    """Whether confirming a seat (and so paying the deposit) needs a valid clearance at that moment."""
    return cohort.deposit_timing == DepositTiming.AFTER_CLEARANCE


def hold_minutes(cohort: Cohort) -> int:
    return cohort.hold_minutes or 30


def take_hold(enrollment: Enrollment | int, *, now: datetime, actor: User | None) -> HoldOutcome:
    """Hold a seat for ``hold_minutes`` while the deposit is paid; or join the waitlist if full.

    Repeating it while the hold is valid changes nothing. An offer from the waitlist turns into a
    hold. Losing the race for the last seat is an outcome (``waitlisted``), not an error.
    """
    enr_id = enrollment if isinstance(enrollment, int) else enrollment.id
    cohort_id = db.session.scalar(select(Enrollment.cohort_id).where(Enrollment.id == enr_id))
    if cohort_id is None:
        raise NotFound("No such enrollment.")
    cohort = lock_cohort(cohort_id)
    enr = lock_enrollment(enr_id)
    if enr.seat == SeatState.CONFIRMED:
        return HoldOutcome("confirmed", enr, "Your seat is already confirmed.")
    if cohort.status not in BOOKABLE:
        raise Conflict("This cohort is not taking bookings.")
    if enr.screening_fee_due:
        raise Conflict("Pay the screening fee first: your application counts as submitted once it is paid.")
    if not can_pay_deposit(cohort, enr):
        if enr.status in PRE_DEPOSIT:
            raise Conflict("The deposit step opens once your medical clearance is recorded.")
        raise Conflict("This application is closed, so no seat can be held.")
    if needs_clearance(cohort):  # the status may trail a lapse the sweep has not seen yet
        clearance_gate.require(enr, now=now, doing="the deposit can be paid")
    until = now + timedelta(minutes=hold_minutes(cohort))
    if enr.seat == SeatState.HELD and enr.hold_expires_at and enr.hold_expires_at > now:
        return HoldOutcome("held", enr, "Your seat is held while you pay the deposit.")
    if enr.seat == SeatState.OFFERED:
        if enr.offer_expires_at is None or enr.offer_expires_at <= now:
            raise Conflict(OFFER_EXPIRED)
        enr.seat = SeatState.HELD.value
        enr.offer_expires_at = None
        enr.waitlist_position = None
    elif enr.seat == SeatState.HELD:  # an expired hold not swept yet: the seat is still counted
        pass
    else:
        if enr.is_waitlisted:
            return HoldOutcome("waitlisted", enr, "You are on the waitlist; we will email you when a seat is "
                                                   "offered to you.")
        # Free what has expired in this cohort first (the waitlist gets first call on it).
        release_expired_in_cohort(cohort, now=now)
        offer_free_seats(cohort, now=now)
        if not occupy(cohort, enr, SeatState.HELD):
            position = join(cohort, enr, now=now, actor=actor, reason="Cohort full when paying")
            return HoldOutcome("waitlisted", enr, LAST_SEAT_TAKEN.format(position=position))
    enr.hold_expires_at = until
    enr.holds_taken += 1
    log(enr, "hold_taken", now=now, actor=actor,
        reason=f"Seat held for {hold_minutes(cohort)} minutes while the deposit is paid")
    return HoldOutcome("held", enr,
                       f"Your seat is held for {hold_minutes(cohort)} minutes while you pay the deposit.")


def release_hold(enrollment: Enrollment, *, now: datetime, actor: User | None, reason: str) -> bool:
    """Give a held seat back (payment failed or abandoned); the waitlist is offered it."""
    cohort = lock_cohort(enrollment.cohort_id)
    enr = lock_enrollment(enrollment.id)
    if enr.seat != SeatState.HELD:
        return False
    release(cohort, enr)
    log(enr, "hold_released", now=now, actor=actor, reason=reason)
    offer_free_seats(cohort, now=now)
    return True


def release_expired_in_cohort(cohort: Cohort, *, now: datetime) -> int:
    """Release expired holds of one locked cohort."""
    rows = db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.seat == SeatState.HELD.value,
        Enrollment.hold_expires_at <= now).order_by(Enrollment.id).execution_options(populate_existing=True))
    n = 0
    for enr in rows:
        release(cohort, enr)
        log(enr, "hold_expired", now=now, actor=None, reason="The seat hold expired before the deposit was paid")
        n += 1
    return n


def sweep_expired_holds(now: datetime) -> int:
    """Scheduler job: free every expired hold and offer the seats to the waitlist.

    The caller (job wrapper) commits once. Returns how many holds were released.
    """
    cohort_ids = list(db.session.scalars(select(Enrollment.cohort_id).where(
        Enrollment.seat == SeatState.HELD.value, Enrollment.hold_expires_at <= now).distinct()))
    total = 0
    for cohort in locking.lock_many(Cohort, cohort_ids):
        total += release_expired_in_cohort(cohort, now=now)
        offer_free_seats(cohort, now=now)
    return total



# --------------------------------------------------------------------------------------------
# The waitlist
# --------------------------------------------------------------------------------------------


def join(cohort: Cohort, enr: Enrollment, *, now: datetime, actor: User | None, reason: str) -> int:
    """Put ``enr`` at the end of the waitlist (cohort locked). Returns their place in line."""
    if enr.waitlist_position is None:
        last = db.session.scalar(select(func.max(Enrollment.waitlist_position)).where(
            Enrollment.cohort_id == cohort.id)) or 0
        enr.waitlist_position = last + 1
        enr.waitlisted_at = now
        log(enr, "waitlisted", now=now, actor=actor, reason=reason)
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
        .order_by(Enrollment.waitlist_position, Enrollment.id).execution_options(populate_existing=True)))
    offered: list[Enrollment] = []
    for unit in _units(cohort, waiting):
        if free <= 0:
            break
        if len(unit) > free or not all(can_pay_deposit(cohort, e) for e in unit):
            continue
        for enr in unit:
            _offer(cohort, enr, now=now)
            offered.append(enr)
        free -= len(unit)
    return offered


def _offer(cohort: Cohort, enr: Enrollment, *, now: datetime) -> None:
    occupy(cohort, enr, SeatState.OFFERED)
    hours = cohort.offer_hours or 48
    enr.offer_expires_at = now + timedelta(hours=hours)
    enr.offers_made += 1
    log(enr, "offer_sent", now=now, actor=None,
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


def accept_offer(enr: Enrollment, *, now: datetime, actor: User | None) -> HoldOutcome:
    """Accepting turns the offer into a seat hold for the deposit."""
    if enr.seat != SeatState.OFFERED:
        if enr.status == EnrollmentStatus.OFFER_EXPIRED:
            raise Conflict(OFFER_EXPIRED)
        if enr.seat in (SeatState.HELD, SeatState.CONFIRMED):
            return take_hold(enr, now=now, actor=actor)
        raise Conflict(NO_OFFER)
    return take_hold(enr, now=now, actor=actor)


def move(enr: Enrollment, direction: str, *, now: datetime, actor: User) -> bool:
    """Swap places with the neighbour above ("up") or below ("down")."""
    if direction not in ("up", "down"):
        raise ValidationFailed("Choose up or down.", field="direction")
    cohort = lock_cohort(enr.cohort_id)
    enr = lock_enrollment(enr.id)
    if not enr.is_waitlisted:
        raise Conflict("This person is not on the waitlist.")
    q = select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.waitlist_position.is_not(None))
    if direction == "up":
        q = q.where(Enrollment.waitlist_position < enr.waitlist_position).order_by(
            Enrollment.waitlist_position.desc())
    else:
        q = q.where(Enrollment.waitlist_position > enr.waitlist_position).order_by(Enrollment.waitlist_position)
    other = db.session.scalar(q.limit(1))
    if other is None:
        return False
    enr.waitlist_position, other.waitlist_position = other.waitlist_position, enr.waitlist_position
    log(enr, "waitlist_moved", now=now, actor=actor, reason=f"Moved {direction} the waitlist")
    db.session.flush()
    return True



jobs.register("seats.expire_holds", sweep_expired_holds, seconds=30)
