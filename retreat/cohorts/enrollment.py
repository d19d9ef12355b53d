"""THE enrollment state machine. Every status change goes through ``transition`` here.

    applied -> intake_submitted -> clearance_pending -> cleared -> deposit_paid (seat confirmed)
            -> balance_paid -> attended -> completed
    exits: withdrawn, not_cleared, declined (by the practice), offer_expired, cancelled (the practice
    cancelled the cohort)

Rules: the row is locked (the cohort first when a seat may change); repeating a transition is a
no-op (returns False); an illegal one raises ``Conflict``; each change writes an
``EnrollmentTransition`` (who, when, why). Leaving through an exit frees the seat, takes the
person off the waitlist, cancels their reminders and offers the seat to the waitlist.

When a cohort takes the deposit before clearance, the seat can be confirmed (``confirm_seat``)
while the status is still applied..cleared; reaching ``cleared`` with a confirmed seat then moves
on to ``deposit_paid`` by itself, and on to ``balance_paid`` when everything was paid before the
clearance (``signals.seat_cleared``: payments knows what is left to pay).

The waitlist actions that are transitions live here too: declining an offer or leaving the
waitlist withdraws, removing someone from it declines, and ``sweep_expired_offers`` (scheduler job
``waitlist.expire_offers``) moves offers not taken up in time to offer_expired. The seat and
waitlist bookkeeping they rest on is ``retreat.cohorts.seats`` (which does not import this module).

Hooks for other features: Clearance calls ``submit_intake``, ``request_clearance``,
``mark_cleared``, ``mark_not_cleared``, ``clearance_lapsed``; Payments calls
``seats.take_hold``, ``confirm_seat``, ``seats.release_hold``, ``mark_balance_paid``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from retreat.accounts.models import User
from retreat.cohorts import clearance_gate, preparation, seats
from retreat.cohorts.models import (
    EXITS,
    Cohort,
    CohortStatus,
    Enrollment,
    EnrollmentParty,
    SeatState,
)
from retreat.cohorts.models import (
    EnrollmentStatus as S,
)
from retreat.core import jobs, locking, signals, urls
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox

PIPELINE = (S.APPLIED, S.INTAKE_SUBMITTED, S.CLEARANCE_PENDING, S.CLEARED, S.DEPOSIT_PAID, S.BALANCE_PAID,
            S.ATTENDED, S.COMPLETED)
_PRE = {S.WITHDRAWN, S.DECLINED, S.CANCELLED}

ALLOWED: dict[S, frozenset[S]] = {
    S.APPLIED: frozenset({S.INTAKE_SUBMITTED, S.OFFER_EXPIRED} | _PRE),
    # back to intake_submitted when the provider asks for more information
    S.INTAKE_SUBMITTED: frozenset({S.CLEARANCE_PENDING, S.OFFER_EXPIRED} | _PRE),
    S.CLEARANCE_PENDING: frozenset({S.CLEARED, S.NOT_CLEARED, S.INTAKE_SUBMITTED, S.OFFER_EXPIRED} | _PRE),
    # back to clearance_pending when the clearance lapses before the retreat
    S.CLEARED: frozenset({S.DEPOSIT_PAID, S.CLEARANCE_PENDING, S.NOT_CLEARED, S.OFFER_EXPIRED} | _PRE),
    # back to clearance_pending when the clearance lapses before the retreat (the seat stays confirmed)
    S.DEPOSIT_PAID: frozenset({S.BALANCE_PAID, S.CLEARANCE_PENDING} | _PRE),
    S.BALANCE_PAID: frozenset({S.ATTENDED, S.CLEARANCE_PENDING} | _PRE),
    S.ATTENDED: frozenset({S.COMPLETED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.WITHDRAWN: frozenset(),
    S.NOT_CLEARED: frozenset(),
    S.DECLINED: frozenset(),
    S.OFFER_EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}

LABELS = {
    S.APPLIED: "Applied", S.INTAKE_SUBMITTED: "Intake submitted", S.CLEARANCE_PENDING: "Clearance pending",
    S.CLEARED: "Medically cleared", S.DEPOSIT_PAID: "Deposit paid — seat confirmed",
    S.BALANCE_PAID: "Balance paid", S.ATTENDED: "Attended", S.COMPLETED: "Completed",
    S.WITHDRAWN: "Withdrawn", S.NOT_CLEARED: "Not cleared", S.DECLINED: "Declined by the practice",
    S.OFFER_EXPIRED: "Waitlist offer expired", S.CANCELLED: "Cohort cancelled by the practice",
}
MOTIVATION_MAX = 2000


def label(status: str) -> str:
    return LABELS.get(S(status), status)


def transition(enrollment: Enrollment, to: S, *, now: datetime, actor: User | None, reason: str = "",
               event: str | None = None) -> bool:
    """Move ``enrollment`` to ``to``. False when it is already there; Conflict when not allowed."""
    to = S(to)
    if to in EXITS:
        seats.lock_cohort(enrollment.cohort_id)  # the seat may move on: the cohort first
    enr = seats.lock_enrollment(enrollment.id)
    current = S(enr.status)
    if current == to:
        return False
    if to not in ALLOWED[current]:
        raise Conflict(f"An enrollment that is “{label(current)}” cannot become “{label(to)}”.",
                       errors={"status": [f"{current.value} -> {to.value} is not allowed"]})
    enr.status = to.value
    enr.updated_at = now
    seats.log(enr, event or to.value, now=now, actor=actor, reason=reason, from_status=current.value,
              to_status=to.value)
    if to in EXITS:
        _leave(enr, now=now, actor=actor)
    return True


def _leave(enr: Enrollment, *, now: datetime, actor: User | None) -> None:
    """After an exit: free the seat, leave the waitlist, cancel reminders, tell the subscribers of
    ``signals.enrollment_left`` (refund by the cohort's policy, follow-ups cancelled), offer the
    seat on."""
    cohort = db.session.get(Cohort, enr.cohort_id)
    freed = seats.release(cohort, enr)
    enr.waitlist_position = None
    outbox.cancel(group_key=f"enrollment:{enr.id}", now=now)
    signals.enrollment_left.send(enr, now=now, actor=actor)
    if freed and cohort.status in seats.BOOKABLE:
        seats.offer_free_seats(cohort, now=now)


# --------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------


def apply(cohort: Cohort, participant: User, *, now: datetime, motivation: str = "",
          partner_email: str | None = None) -> Enrollment:
    """Apply to a cohort. Joins the waitlist straight away when no seat is free."""
    motivation = (motivation or "").strip()
    if len(motivation) > MOTIVATION_MAX:
        raise ValidationFailed(f"Please keep this under {MOTIVATION_MAX} characters.", field="motivation")
    partner_email = (partner_email or "").strip().lower() or None
    if partner_email and partner_email == participant.email:
        raise ValidationFailed("Enter the email of the person you are applying with, not your own.",
                               field="partner_email")
    if partner_email and ("@" not in partner_email or len(partner_email) > 254):
        raise ValidationFailed("Enter a valid email address.", field="partner_email")
    cohort = seats.lock_cohort(cohort.id)
    if cohort.status != CohortStatus.OPEN or cohort.starts_at <= now:
        raise Conflict("This cohort is not accepting applications.")
    existing = db.session.scalar(select(Enrollment).where(Enrollment.cohort_id == cohort.id,
                                                          Enrollment.participant_id == participant.id))
    if existing is not None:
        raise Conflict("You have already applied to this cohort.", field="cohort")
    enr = Enrollment(cohort_id=cohort.id, participant_id=participant.id, status=S.APPLIED.value,
                     seat=SeatState.NONE.value, motivation=motivation, applied_at=now, created_at=now,
                     updated_at=now, holds_taken=0, offers_made=0,
                     screening_fee_minor=cohort.screening_fee_minor or None)
    try:
        with db.session.begin_nested():
            db.session.add(enr)
            db.session.flush()
    except IntegrityError as exc:  # a concurrent double submit
        raise Conflict("You have already applied to this cohort.", field="cohort") from exc
    seats.log(enr, "applied", now=now, actor=participant, from_status=None, to_status=S.APPLIED.value,
              reason="Application received")
    _join_party(cohort, enr, participant, partner_email)
    preparation.create_checklist(enr, cohort, now=now)
    if cohort.seats_available == 0:
        seats.join(cohort, enr, now=now, actor=participant, reason="Cohort full at application")
    return enr


def _join_party(cohort: Cohort, enr: Enrollment, participant: User, partner_email: str | None) -> None:
    invited = db.session.scalar(select(EnrollmentParty).where(
        EnrollmentParty.cohort_id == cohort.id, EnrollmentParty.invite_email == participant.email))
    if invited is not None:
        invited.invite_email = None
        enr.party_id = invited.id
        return
    if not partner_email:
        return
    partner = db.session.scalar(select(Enrollment).join(Enrollment.participant).where(
        Enrollment.cohort_id == cohort.id, User.email == partner_email))
    if partner is not None and partner.party_id is None and partner.is_active:
        party = EnrollmentParty(cohort_id=cohort.id)
        db.session.add(party)
        db.session.flush()
        partner.party_id = party.id
        enr.party_id = party.id
    elif partner is None:
        party = EnrollmentParty(cohort_id=cohort.id, invite_email=partner_email)
        db.session.add(party)
        db.session.flush()
        enr.party_id = party.id


# --------------------------------------------------------------------------------------------
# Pipeline steps (called by this feature, Clearance and Payments)
# --------------------------------------------------------------------------------------------


def submit_intake(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.INTAKE_SUBMITTED, now=now, actor=actor, reason="Medical intake submitted")


def request_clearance(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.CLEARANCE_PENDING, now=now, actor=actor,
                      reason="Referred to the partner provider for clearance")


def mark_cleared(enr: Enrollment, *, now: datetime, actor: User | None, reason: str = "Medically cleared") -> bool:
    cohort = seats.lock_cohort(enr.cohort_id)  # cleared may make them the next one offered a seat
    changed = transition(enr, S.CLEARED, now=now, actor=actor, reason=reason)
    if enr.seat == SeatState.CONFIRMED:
        if transition(enr, S.DEPOSIT_PAID, now=now, actor=actor, reason="Deposit was already paid"):
            signals.seat_cleared.send(enr, now=now, actor=actor)  # paid in full already: balance_paid
    elif changed and enr.is_waitlisted:
        seats.offer_free_seats(cohort, now=now)
    return changed


def mark_not_cleared(enr: Enrollment, *, now: datetime, actor: User | None,
                     reason: str = "Not medically cleared") -> bool:
    return transition(enr, S.NOT_CLEARED, now=now, actor=actor, reason=reason)


def clearance_lapsed(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.CLEARANCE_PENDING, now=now, actor=actor, reason="Clearance expired: back in review")


def confirm_seat(enrollment: Enrollment, *, now: datetime, actor: User | None,
                 reason: str = "Deposit paid") -> bool:
    """The deposit is paid: the held (or offered) seat becomes confirmed. Repeating is a no-op.

    If the hold was already swept, a free seat is taken if there is one; otherwise Conflict
    (Payments then refunds).
    """
    cohort = seats.lock_cohort(enrollment.cohort_id)
    enr = seats.lock_enrollment(enrollment.id)
    if enr.seat == SeatState.CONFIRMED:
        return False
    if not seats.can_pay_deposit(cohort, enr):
        raise Conflict(f"A seat cannot be confirmed for an enrollment that is “{label(enr.status)}”.")
    if seats.needs_clearance(cohort):
        clearance_gate.require(enr, now=now, doing="the seat can be confirmed")
    if enr.seat == SeatState.NONE:
        if enr.is_waitlisted or not seats.occupy(cohort, enr, SeatState.CONFIRMED):
            raise Conflict("The seat hold expired and the cohort is now full.")
    enr.seat = SeatState.CONFIRMED.value
    enr.seat_confirmed_at = now
    enr.hold_expires_at = None
    enr.offer_expires_at = None
    enr.waitlist_position = None
    if enr.status == S.CLEARED:
        transition(enr, S.DEPOSIT_PAID, now=now, actor=actor, reason=reason)
    else:
        seats.log(enr, "seat_confirmed", now=now, actor=actor, reason=reason + " (before clearance)")
    signals.seat_confirmed.send(enr, now=now)  # circle invites, check-ins and surveys (integration)
    return True


def mark_balance_paid(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.BALANCE_PAID, now=now, actor=actor, reason="Balance paid in full")


def mark_attended(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.ATTENDED, now=now, actor=actor, reason="Attended the retreat")


def mark_completed(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    return transition(enr, S.COMPLETED, now=now, actor=actor, reason="Completed the retreat")


def withdraw(enr: Enrollment, *, now: datetime, actor: User | None, reason: str = "") -> bool:
    """The participant leaves. The refund the cohort's policy gives at ``now`` is decided in the
    same transaction by the ``enrollment_left`` handler of ``retreat.payments.refunds``, under the
    locks the transition took (``refunds.submit_pending`` sends it to Stripe after the commit)."""
    reason = (reason or "").strip()[:500] or "Withdrawn by the participant"
    return transition(enr, S.WITHDRAWN, now=now, actor=actor, reason=reason)


def cohort_cancelled(enr: Enrollment, *, now: datetime, actor: User | None, reason: str) -> bool:
    """The practice cancelled the cohort: the enrollment exits (seat, hold, offer, waitlist place and
    reminders go); the ``enrollment_left`` handler of ``retreat.payments.refunds`` decides the full
    refund of everything paid (sent by ``refunds.submit_pending``) and writes the participant a
    kind email that names it. Repeating is a no-op."""
    return transition(enr, S.CANCELLED, now=now, actor=actor, reason=reason)


def decline(enr: Enrollment, *, now: datetime, actor: User | None, reason: str) -> bool:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for declining this application.", field="reason")
    if len(reason) > 1000:
        raise ValidationFailed("Please keep the reason under 1000 characters.", field="reason")
    return transition(enr, S.DECLINED, now=now, actor=actor, reason=reason)


# --------------------------------------------------------------------------------------------
# Waitlist actions that are transitions
# --------------------------------------------------------------------------------------------


def decline_offer(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    """Declining an offer withdraws the application; the seat moves on."""
    if enr.seat != SeatState.OFFERED:
        raise Conflict(seats.NO_OFFER)
    return withdraw(enr, now=now, actor=actor, reason="Declined the waitlist offer")


def leave_waitlist(enr: Enrollment, *, now: datetime, actor: User | None) -> bool:
    if not enr.is_waitlisted:
        raise Conflict("You are not on the waitlist for this cohort.")
    return withdraw(enr, now=now, actor=actor, reason="Left the waitlist")


def remove_from_waitlist(enr: Enrollment, *, now: datetime, actor: User, reason: str) -> bool:
    """A facilitator takes someone off the waitlist (the application is declined, with a reason)."""
    if not enr.is_waitlisted:
        raise Conflict("This person is not on the waitlist.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for removing this person from the waitlist.", field="reason")
    return decline(enr, now=now, actor=actor, reason=f"Removed from the waitlist: {reason}")


def sweep_expired_offers(now: datetime) -> int:
    """Scheduler job: expire offers past their time and offer the seats to the next people.

    The caller (job wrapper) commits once. Returns how many offers expired.
    """
    rows = list(db.session.execute(select(Enrollment.id, Enrollment.cohort_id).where(
        Enrollment.seat == SeatState.OFFERED.value, Enrollment.offer_expires_at <= now)))
    if not rows:
        return 0
    locking.lock_many(Cohort, {cohort_id for _, cohort_id in rows})  # every cohort first, then the offers
    n = 0
    for enr in locking.lock_many(Enrollment, [enr_id for enr_id, _ in rows]):
        if enr.seat != SeatState.OFFERED or enr.offer_expires_at is None or enr.offer_expires_at > now:
            continue  # accepted or handled by someone else meanwhile
        person = enr.participant
        transition(enr, S.OFFER_EXPIRED, now=now, actor=None, reason="The waitlist offer was not taken up in time")
        outbox.enqueue(template="waitlist_offer_expired", dedupe_key=f"waitlist-expired-{enr.id}", to_user=person,
                       now=now, context={"participant_name": person.name, "cohort_title": enr.cohort.title,
                                         "retreat_title": enr.cohort.retreat.title,
                                         "url": f"{urls.base_url()}/retreats"})
        n += 1
    return n


def tracker_steps(enr: Enrollment) -> list[dict]:
    """The participant's progress tracker: each pipeline step with done / current / upcoming.

    After an exit every step the enrollment reached is done and none is current; a deposit paid
    (the seat confirmed) is done even when it came before clearance."""
    status = S(enr.status)
    exited = status not in PIPELINE
    reached = _last_pipeline_step(enr) if exited else PIPELINE.index(status)
    steps = []
    for i, step in enumerate(PIPELINE):
        done = i < reached or (i == reached and (exited or status == S.COMPLETED)) or (
            i > reached and step == S.DEPOSIT_PAID and enr.seat_confirmed_at is not None)
        state = "done" if done else ("current" if i == reached and not exited else "upcoming")
        steps.append({"status": step.value, "label": LABELS[step], "state": state})
    return steps


def _last_pipeline_step(enr: Enrollment) -> int:
    last = 0
    for t in enr.transitions:
        if t.to_status in {s.value for s in PIPELINE}:
            last = max(last, PIPELINE.index(S(t.to_status)))
    return last


jobs.register("waitlist.expire_offers", sweep_expired_offers, seconds=60)
