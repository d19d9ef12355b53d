"""Seats: holds, offers and confirmed seats, counted on the locked cohort row.

The invariant: offered + held + confirmed seats never exceed a cohort's capacity, whatever the
concurrency. Every seat change goes through ``occupy``/``release`` here, with the cohort row
locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers with BEGIN
IMMEDIATE). ``Cohort.seats_taken`` is the counter and the database CHECK
``seats_taken <= capacity`` is the backstop if a bug ever skips the lock.

Lock order, everywhere: the cohort first, then its enrollments. Never call Stripe or SMTP while
holding these locks (email goes to the outbox, in the same transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from retreat.accounts.models import User
from retreat.cohorts.models import (
    Cohort,
    CohortStatus,
    DepositTiming,
    Enrollment,
    EnrollmentStatus,
    EnrollmentTransition,
    SeatState,
)
from retreat.core import jobs
from retreat.core.errors import Conflict, NotFound
from retreat.extensions import db

PRE_DEPOSIT = frozenset({EnrollmentStatus.APPLIED, EnrollmentStatus.INTAKE_SUBMITTED,
                         EnrollmentStatus.CLEARANCE_PENDING, EnrollmentStatus.CLEARED})

# Closed means "no new applications"; people already in the pipeline can still pay.
BOOKABLE = frozenset({CohortStatus.OPEN, CohortStatus.CLOSED})

LAST_SEAT_TAKEN = "The last seat was just taken; you are on the waitlist (position {position}). " \
                  "We will email you as soon as a seat frees up."


@dataclass(frozen=True)
class HoldOutcome:
    """What happened when someone asked for a seat: ``held``, ``confirmed`` or ``waitlisted``."""

    result: str
    enrollment: Enrollment
    message: str


def _lock(model, row_id: int, missing: str):
    """SELECT ... FOR UPDATE, refreshing the object already in the session."""
    row = db.session.scalar(select(model).where(model.id == row_id).with_for_update()
                            .execution_options(populate_existing=True))
    if row is None:
        raise NotFound(missing)
    return row


def lock_cohort(cohort_id: int) -> Cohort:
    return _lock(Cohort, cohort_id, "No such cohort.")


def lock_enrollment(enrollment_id: int) -> Enrollment:
    return _lock(Enrollment, enrollment_id, "No such enrollment.")


_SAME = object()


def log(enr: Enrollment, event: str, *, now: datetime, actor: User | None, reason: str = "",
        from_status: str | None | object = _SAME, to_status: str | None = None) -> EnrollmentTransition:
    """Write the who/when/why row; seat events keep the status (from == to)."""
    row = EnrollmentTransition(enrollment_id=enr.id, at=now, actor_id=actor.id if actor else None, event=event,
                               from_status=enr.status if from_status is _SAME else from_status,
                               to_status=to_status or enr.status,
                               reason=reason)
    db.session.add(row)
    return row


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
    """Whether the enrollment has reached the deposit step of its cohort."""
    if cohort.deposit_timing == DepositTiming.AFTER_CLEARANCE:
        return enr.status == EnrollmentStatus.CLEARED
    return enr.status in PRE_DEPOSIT


def hold_minutes(cohort: Cohort) -> int:
    return cohort.hold_minutes or 30


def take_hold(enrollment: Enrollment | int, *, now: datetime, actor: User | None) -> HoldOutcome:
    """Hold a seat for ``hold_minutes`` while the deposit is paid; or join the waitlist if full.

    Repeating it while the hold is valid changes nothing. An offer from the waitlist turns into a
    hold. Losing the race for the last seat is an outcome (``waitlisted``), not an error.
    """
    from retreat.cohorts import waitlist

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
    if not can_pay_deposit(cohort, enr):
        if enr.status in PRE_DEPOSIT:
            raise Conflict("The deposit step opens once your medical clearance is recorded.")
        raise Conflict("This application is closed, so no seat can be held.")
    until = now + timedelta(minutes=hold_minutes(cohort))
    if enr.seat == SeatState.HELD and enr.hold_expires_at and enr.hold_expires_at > now:
        return HoldOutcome("held", enr, "Your seat is held while you pay the deposit.")
    if enr.seat == SeatState.OFFERED:
        if enr.offer_expires_at is None or enr.offer_expires_at <= now:
            raise Conflict("This waitlist offer has expired, so the seat was offered to the next person.")
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
        waitlist.offer_free_seats(cohort, now=now)
        if not occupy(cohort, enr, SeatState.HELD):
            position = waitlist.join(cohort, enr, now=now, actor=actor, reason="Cohort full when paying")
            return HoldOutcome("waitlisted", enr, LAST_SEAT_TAKEN.format(position=position))
    enr.hold_expires_at = until
    enr.holds_taken += 1
    log(enr, "hold_taken", now=now, actor=actor,
        reason=f"Seat held for {hold_minutes(cohort)} minutes while the deposit is paid")
    return HoldOutcome("held", enr,
                       f"Your seat is held for {hold_minutes(cohort)} minutes while you pay the deposit.")


def release_hold(enrollment: Enrollment, *, now: datetime, actor: User | None, reason: str) -> bool:
    """Give a held seat back (payment failed or abandoned); the waitlist is offered it."""
    from retreat.cohorts import waitlist

    cohort = lock_cohort(enrollment.cohort_id)
    enr = lock_enrollment(enrollment.id)
    if enr.seat != SeatState.HELD:
        return False
    release(cohort, enr)
    log(enr, "hold_released", now=now, actor=actor, reason=reason)
    waitlist.offer_free_seats(cohort, now=now)
    return True


def release_expired_in_cohort(cohort: Cohort, *, now: datetime) -> int:
    """Release expired holds of one locked cohort."""
    rows = db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.seat == SeatState.HELD.value,
        Enrollment.hold_expires_at <= now).with_for_update().execution_options(populate_existing=True))
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
    from retreat.cohorts import waitlist

    cohort_ids = list(db.session.scalars(select(Enrollment.cohort_id).where(
        Enrollment.seat == SeatState.HELD.value, Enrollment.hold_expires_at <= now).distinct()))
    total = 0
    for cid in sorted(cohort_ids):
        cohort = lock_cohort(cid)
        total += release_expired_in_cohort(cohort, now=now)
        waitlist.offer_free_seats(cohort, now=now)
    return total


jobs.register("seats.expire_holds", sweep_expired_holds, seconds=30)
