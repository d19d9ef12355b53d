"""Free 1:1 consultations: availability, the one slot service, booking, manage links, outcomes.

Every page and API route asks ``free_slots`` for free times, and ``book``/``reschedule``
re-check the chosen time with the same code while holding the facilitator's settings row lock
(on PostgreSQL the ``UPDATE`` that also bumps the slot cache's version; SQLite serialises writers
with ``BEGIN IMMEDIATE``). Consult rows are locked through ``retreat.core.locking``.
The database has the last word: an exclusion constraint on PostgreSQL refuses overlapping
blocked ranges, and the loser of a race gets ``SlotUnavailable`` (409), never a 500.

Messages (confirmation with an .ics invite, reminders 24 h and 1 h before, facilitator notices)
are outbox rows written in the same transaction as the booking change.
"""

from __future__ import annotations

import json
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import (
    bindparam,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.consults import claims
from retreat.consults.availability import Schedule
from retreat.consults.manage import can_change, changeable_after, cutoff_words, issue_manage_token, manage_url
from retreat.consults.models import (
    NO_OVERLAP_CONSTRAINT,
    Consultation,
    ConsultSettings,
    ConsultStatus,
    note_slots_bumped,
)
from retreat.consults.notices import (
    guest_group,
    queue_facilitator_notice,
    queue_guest_cancellation,
    queue_guest_messages,
)
from retreat.consults.prescreen import flags_for, safety_signal, validate_guest
from retreat.consults.slots import (
    SlotUnavailable,
    free_slots,
    is_free,
    load_schedules,
    round_robin_order,
    why_not_free,
)
from retreat.core import signals
from retreat.core.context import RequestContext
from retreat.core.crypto import encrypt_field
from retreat.core.errors import Conflict, PermissionDenied, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox, webhooks
from retreat.timeutil import email_time


@dataclass(frozen=True)
class Booking:
    consult: Consultation
    manage_token: str
    manage_url: str



class _NotFree(Exception):
    def __init__(self, why: SlotUnavailable):
        self.why = why


def _aware_utc(value: datetime, field: str = "start") -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationFailed("Give the time with its UTC offset, e.g. 2026-03-10T16:00:00+00:00.", field=field)
    return value.astimezone(UTC)


def _is_overlap_violation(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23P01" or NO_OVERLAP_CONSTRAINT in str(exc.orig)


def _lock_schedule(facilitator_id: int, at: datetime, *, exclude_consult_id: int | None = None) -> Schedule | None:
    """Serialise with the facilitator's other bookings (``_lock_facilitator``), then load their schedule
    around ``at`` (fresh, under the lock)."""
    settings, _fac = _lock_facilitator(facilitator_id)
    return _schedule_around(settings, at, exclude_consult_id=exclude_consult_id)


def _schedule_around(settings: ConsultSettings | None, at: datetime, *,
                     exclude_consult_id: int | None = None) -> Schedule | None:
    """The schedule of a locked settings row around ``at`` (one query), None when it takes no bookings."""
    if settings is None or not settings.accepting_bookings:
        return None
    schedules = load_schedules(at - timedelta(days=1), at + timedelta(days=1), settings_rows=[settings],
                               exclude_consult_id=exclude_consult_id)
    return schedules[0] if schedules else None


def _lock_facilitator(facilitator_id: int) -> tuple[ConsultSettings | None, User | None]:
    """The facilitator's settings row, locked, and the facilitator, in one statement; (None, None) when
    they take no bookings. Everything read about their consults afterwards is read under the lock.

    The lock is the conditional UPDATE's row lock, not a ``core.locking`` lock: a write that every
    booking makes anyway (the version bump), it serialises a facilitator's bookings and reschedules,
    and it lasts only as long as the savepoint of the candidate that took it (a refused candidate of
    "whoever is free" gives it back, so the round-robin order of candidates is no lock order).

    PostgreSQL: ``UPDATE consult_settings SET slots_version = slots_version + 1 ... FROM users ...
    RETURNING`` locks the row and bumps the slot cache's version at once (a booking changes the free
    times; a refusal is rolled back with it), so the after-flush hook need not bump it again. SQLite
    serialises writers with ``BEGIN IMMEDIATE``; there a plain SELECT reads the rows and the hook bumps."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    row = db.session.execute(_lock_statement(postgres), {"fid": facilitator_id}).first()
    if row is not None and postgres:
        note_slots_bumped(db.session(), facilitator_id)
    return (row[0], row[1]) if row is not None else (None, None)


@lru_cache(maxsize=2)
def _lock_statement(postgres: bool):
    """Built once (constructing it costs more than running it)."""
    cs, fid = ConsultSettings, bindparam("fid")
    if postgres:
        return (update(cs).where(cs.facilitator_id == fid, cs.accepting_bookings.is_(True), User.id == cs.facilitator_id)
                .values(slots_version=cs.slots_version + 1).returning(cs, User)
                .execution_options(populate_existing=True, synchronize_session=False))
    return (select(cs, User).join(User, User.id == cs.facilitator_id)
            .where(cs.facilitator_id == fid, cs.accepting_bookings.is_(True))
            .execution_options(populate_existing=True))


def _check_facilitator(facilitator_id, settings: ConsultSettings | None, fac: User | None) -> None:
    """A facilitator named by the guest must exist, be active and take bookings (else 422, not 409)."""
    if fac is None and settings is None:  # no settings row: tell "no such facilitator" from "not taking bookings"
        fac = db.session.get(User, facilitator_id)
    if fac is None or fac.role != Role.FACILITATOR.value or not fac.is_active_account:
        raise ValidationFailed("There is no facilitator with that id.", field="facilitator_id")
    if settings is None or not settings.accepting_bookings:
        raise ValidationFailed("That facilitator is not taking consult bookings.", field="facilitator_id")


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def book(*, start: datetime, facilitator_id: int | None = None, name: str, email: str, phone: str | None = None,
         tz: str, reason: str | None = None, heard_from: str | None = None, answers: dict | None = None,
         base_url: str, now: datetime, ctx: RequestContext | None = None, via: str = "web",
         signed_in: User | None = None) -> Booking:
    """Book a free consult at ``start`` with one facilitator, or with whoever is free (fair round-robin).

    For each candidate facilitator: lock their settings row, bump its slot cache version and read
    the facilitator (one statement on PostgreSQL; on SQLite the after-flush hook bumps), re-check the
    time against their schedule read under the lock (one statement), find or create the guest's
    account (one statement), insert the consult (the exclusion constraint has the last word), then
    queue the messages and write the audit events (one multi-row insert each). A savepoint wraps
    each candidate except the last, so that a refusal can try the next one; when ``SlotUnavailable``
    comes from the last (or only) candidate, the caller rolls back, as it does for every refusal.
    """
    guest = validate_guest(name=name, email=email, phone=phone, tz=tz, reason=reason, heard_from=heard_from,
                           answers=answers)
    start = _aware_utc(start)
    if start <= now:
        raise ValidationFailed("That time has already passed. Please choose another time.", field="start")
    if facilitator_id is not None:
        if not _valid_id(facilitator_id):
            raise ValidationFailed("There is no facilitator with that id.", field="facilitator_id")
        candidates = [facilitator_id]
    else:
        candidates = round_robin_order(
            [s.facilitator_id for s in free_slots(start, start + timedelta(microseconds=1), now)], now)
        if not candidates:
            schedules = load_schedules(start - timedelta(days=1), start + timedelta(days=1))
            reasons = [why_not_free(s, start, now) for s in schedules]
            for wanted in ("taken", "too_soon"):
                for r in reasons:
                    if r.reason == wanted:
                        raise r
            raise SlotUnavailable("That time is not available for booking.", reason="unavailable")
    last_reason: SlotUnavailable | None = None
    for n, fid in enumerate(candidates):
        try:
            # The audit events (a new account, the booking) are written together at the end; the
            # savepoint lets a refusal try the next candidate.
            with audit.batched(), db.session.begin_nested() if n < len(candidates) - 1 else nullcontext():
                return _book_with(fid, start, guest, check=facilitator_id is not None, base_url=base_url,
                                  now=now, ctx=ctx, via=via, owner=claims.owner_for(signed_in, guest["email"]))
        except _NotFree as nf:
            last_reason = nf.why
        except IntegrityError as exc:
            if not _is_overlap_violation(exc):
                raise
            last_reason = SlotUnavailable("Sorry, that time was just taken.", reason="taken")
    raise last_reason or SlotUnavailable("Sorry, that time was just taken.", reason="taken")


def _book_with(fid: int, start: datetime, guest: dict, *, check: bool, base_url: str, now: datetime,
               ctx: RequestContext | None, via: str, owner: User | None) -> Booking:
    """One candidate of ``book``: raises _NotFree (or IntegrityError from the exclusion constraint).
    Without ``owner`` (the signed-in owner of the email) the consult is a guest record until the
    email's owner confirms it (``retreat.consults.claims``)."""
    settings, fac = _lock_facilitator(fid)
    if check:
        _check_facilitator(fid, settings, fac)
    schedule = _schedule_around(settings, start)
    if schedule is None:
        raise _NotFree(SlotUnavailable("That facilitator is not taking bookings.", reason="unavailable"))
    if not is_free(schedule, start, now):
        raise _NotFree(why_not_free(schedule, start, now))
    consult = Consultation(
        calendar_uid=f"consult-{uuid.uuid4()}@retreat", facilitator_id=fid,
        participant_id=owner.id if owner else None, owner_confirmed_at=now if owner else None, start_at=start, end_at=start + schedule.duration,
        blocked_start=start - schedule.buffer_before,
        blocked_end=start + schedule.duration + schedule.buffer_after,
        status=ConsultStatus.BOOKED.value, sequence=0, booked_via=via,
        guest_name=guest["name"], guest_email=guest["email"], guest_phone=guest["phone"],
        guest_tz=guest["tz"], heard_from=guest["heard_from"],
        reason_encrypted=encrypt_field(guest["reason"]) if guest["reason"] else None,
        answers_encrypted=encrypt_field(json.dumps(guest["answers"], sort_keys=True)),
        flagged=bool(flags_for(guest["answers"])), created_at=now, updated_at=now,
    )
    token = issue_manage_token(consult)  # names the calendar UID: written with the row, no UPDATE after it
    claim = None if owner else claims.claim_url(base_url, claims.issue_claim_token(consult))
    db.session.add(consult)
    db.session.flush()  # the exclusion constraint speaks here on PostgreSQL
    # What the messages below read of the consult, already in hand (not loaded again).
    set_committed_value(consult, "settings", settings)
    set_committed_value(consult, "participant", owner)
    set_committed_value(consult, "facilitator", fac)
    link = manage_url(base_url, token)
    if safety_signal(guest["answers"]):
        signals.consult_flagged.send(consult, now=now)  # a safety alert (retreat.clinical)
    with outbox.batched():
        queue_guest_messages(consult, link, now=now, base_url=base_url, event="booked", claim_link=claim)
        queue_facilitator_notice(consult, now=now, base_url=base_url, event="booked")
    emit_webhook(consult, "consultation.booked", now=now)
    audit.record("consult.booked", actor_email=guest["email"], object_type="consultation", object_id=consult.id,
                 details={"facilitator_id": fid, "start": start.isoformat(), "via": via}, ctx=ctx, now=now)
    return Booking(consult, token, link)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if dt else None


def emit_webhook(consult: Consultation, type_: str, *, now: datetime, **extra) -> None:
    """The integrators' event: who, when and with whom; never the reason or pre-screen answers."""
    webhooks.emit(type_, {
        "consultation_id": consult.id, "status": consult.status, "start": _iso(consult.start_at),
        "end": _iso(consult.end_at), "facilitator_id": consult.facilitator_id,
        "facilitator_name": consult.facilitator.name if consult.facilitator else None,
        "guest_name": consult.guest_name, "guest_email": consult.guest_email, "guest_time_zone": consult.guest_tz,
        "booked_via": consult.booked_via, **extra}, now=now)


def reschedule(consult: Consultation, new_start: datetime, *, base_url: str, now: datetime,
               ctx: RequestContext | None = None) -> Booking:
    """Move a booked consult (same facilitator, same calendar UID, SEQUENCE + 1) and reissue its link."""
    new_start = _aware_utc(new_start)
    if consult.status != ConsultStatus.BOOKED.value:
        raise Conflict("This consultation was cancelled, so it cannot be moved. You are welcome to book a new one.")
    if not can_change(consult, now):
        raise Conflict("It is too close to the call to change it online. Please reply to your confirmation email.")
    if new_start <= now:
        raise ValidationFailed("That time has already passed. Please choose another time.", field="start")
    if new_start == consult.start_at:
        raise ValidationFailed("That is already the time of your call.", field="start")
    if new_start <= changeable_after(consult.settings, now):
        raise ValidationFailed(f"Choose a time more than {cutoff_words(consult.settings)} away: calls can be changed "
                               "online only until then, and a sooner time could not be changed again. For a sooner "
                               "time, reply to your confirmation email.", field="start")
    previous_when = previous_start = None
    try:
        with db.session.begin_nested():
            schedule = _lock_schedule(consult.facilitator_id, new_start, exclude_consult_id=consult.id)
            if schedule is None:
                raise SlotUnavailable("Your facilitator is not taking bookings at the moment.", reason="unavailable")
            if not is_free(schedule, new_start, now):
                raise why_not_free(schedule, new_start, now)
            settings = consult.settings
            previous_when = email_time(consult.start_at, settings.tz)
            previous_start = consult.start_at
            consult.start_at = new_start
            consult.end_at = new_start + schedule.duration
            consult.blocked_start = new_start - schedule.buffer_before
            consult.blocked_end = consult.end_at + schedule.buffer_after
            consult.sequence += 1
            consult.updated_at = now
            db.session.flush()
    except IntegrityError as exc:
        if not _is_overlap_violation(exc):
            raise
        raise SlotUnavailable("Sorry, that time was just taken.", reason="taken") from None
    outbox.cancel(group_key=guest_group(consult), now=now)
    token = issue_manage_token(consult)
    link = manage_url(base_url, token)
    queue_guest_messages(consult, link, now=now, base_url=base_url, event="rescheduled")
    queue_facilitator_notice(consult, now=now, base_url=base_url, event="rescheduled", previous_when=previous_when)
    emit_webhook(consult, "consultation.rescheduled", now=now, previous_start=_iso(previous_start))
    audit.record("consult.rescheduled", actor_email=consult.guest_email, object_type="consultation",
                 object_id=consult.id, details={"start": new_start.isoformat(), "sequence": consult.sequence},
                 ctx=ctx, now=now)
    return Booking(consult, token, link)


def cancel(consult: Consultation, *, by: str, base_url: str, now: datetime, actor: User | None = None,
           ctx: RequestContext | None = None) -> Consultation:
    """Cancel (guest before the cutoff, or the facilitator at any time). Repeating it changes nothing."""
    if consult.status == ConsultStatus.CANCELLED.value:
        return consult
    if consult.status != ConsultStatus.BOOKED.value:
        raise Conflict("This consultation has already taken place.")
    if by == "guest" and not can_change(consult, now):
        raise Conflict("It is too close to the call to cancel it online. Please reply to your confirmation email.")
    if by == "facilitator" and (actor is None or actor.id != consult.facilitator_id):
        raise PermissionDenied("Only the consult's facilitator can cancel it.")
    consult.status = ConsultStatus.CANCELLED.value
    consult.cancelled_at = now
    consult.cancelled_by = by
    consult.sequence += 1
    consult.updated_at = now
    queue_guest_cancellation(consult, by=by, now=now, base_url=base_url)
    queue_facilitator_notice(consult, now=now, base_url=base_url, event="cancelled")
    emit_webhook(consult, "consultation.cancelled", now=now, cancelled_by=by)
    audit.record("consult.cancelled", actor=actor, actor_email=None if actor else consult.guest_email,
                 object_type="consultation", object_id=consult.id, details={"by": by}, ctx=ctx, now=now)
    return consult
