"""Integration circles: planned from the cohort's integration plan, kept in step with it, invites
and reminders through the outbox, participants' RSVPs.

``sync_circles`` makes the plan's weekly circles match the plan and its anchor (the end of the last
dosing session, ``plan.anchor``); ``update_plan`` saves a facilitator's edit of the plan and then
re-plans (``plan_changed``: the circles, then the plan listeners such as the follow-up scheduler).
Local times are computed in the cohort's IANA zone, so a circle at 18:00 stays at 18:00 local across
a DST change. Moved circles get a new calendar sequence, so invites update; a participant who says
they can't make it gets no reminders for that circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import Attendance, Cohort, CohortSession, Enrollment, SeatState, SessionKind
from retreat.core import locking, signals, urls
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.integration import circle_changes
from retreat.integration.circle_changes import ADDED, MOVED, PLACE, REMOVED, CircleChange
from retreat.integration.models import CircleRsvp, IntegrationPlan, RsvpStatus
from retreat.integration.plan import anchor, local_to_utc, lock_plan, notify_listeners, plan_for, save_plan
from retreat.messaging import ics, outbox, webhooks
from retreat.messaging.dispatcher import quiet_until
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.timeutil import venue_time, zone


@dataclass
class SyncReport:
    created: list[CohortSession] = field(default_factory=list)
    moved: list[CohortSession] = field(default_factory=list)  # their time changed
    place_changed: list[CohortSession] = field(default_factory=list)  # their place or video link changed
    removed: list[int] = field(default_factory=list)  # circle sequences removed
    kept: list[tuple[CohortSession, str]] = field(default_factory=list)  # (circle, why it was left alone)
    changes: list[CircleChange] = field(default_factory=list)  # what participants see (circle_changes)
    updated: int = 0  # participants sent one update email each

    @property
    def messages(self) -> list[str]:
        out = []
        for s, why in self.kept:
            out.append(f"Circle {s.circle_sequence} ({s.starts_at:%Y-%m-%d}) was kept as it was: {why}.")
        return out

    @property
    def summary(self) -> str:
        """"2 circles moved, 1 place changed" (the facilitator's page)."""
        return circle_changes.summary(self.changes, kept=len(self.kept))



def update_plan(plan: IntegrationPlan, data: Mapping, *, expected_version: int | str | None, actor: User,
                now: datetime) -> SyncReport:
    """A facilitator edits the plan (``plan.save_plan``: refused when stale or invalid, changing
    nothing); then the circles are re-synced and the plan listeners are told."""
    saved = save_plan(plan, data, expected_version=expected_version, actor=actor, now=now)
    return plan_changed(db.session.get(Cohort, saved.cohort_id), now)


def plan_changed(cohort: Cohort, now: datetime) -> SyncReport:
    """The plan, the cohort's dates or its dosing sessions changed: move the circles, tell listeners."""
    report = sync_circles(cohort, now)
    notify_listeners(cohort, now)
    return report


# --------------------------------------------------------------------------------------------
# Circles
# --------------------------------------------------------------------------------------------


def circle_times(cohort: Cohort, plan: IntegrationPlan) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of circles 1..N: weekly from the calendar week (Monday to Sunday) after
    the anchor's week, on the plan's weekday at its local wall-clock time in the cohort's zone."""
    local_anchor = anchor(cohort).astimezone(zone(cohort.timezone)).date()
    next_monday = local_anchor + timedelta(days=7 - local_anchor.weekday())
    first = next_monday + timedelta(days=plan.circle_weekday)
    out = []
    for week in range(plan.circle_weeks):
        start = local_to_utc(first + timedelta(weeks=week), plan.circle_local_time, cohort.timezone)
        out.append((start, start + timedelta(minutes=plan.circle_duration_minutes)))
    return out


def plan_circles(cohort: Cohort) -> list[CohortSession]:
    return list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.circle_sequence.is_not(None))
        .order_by(CohortSession.circle_sequence)))


def all_circles(cohort: Cohort) -> list[CohortSession]:
    """Every integration circle of the cohort (from the plan or added by hand), by time."""
    return list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == SessionKind.INTEGRATION_CIRCLE.value)
        .order_by(CohortSession.starts_at, CohortSession.id)))


def _has_attendance(session: CohortSession) -> bool:
    return db.session.scalar(select(func.count()).select_from(Attendance).where(
        Attendance.session_id == session.id)) > 0


def _has_rsvps(session: CohortSession) -> bool:
    return db.session.scalar(select(func.count()).select_from(CircleRsvp).where(
        CircleRsvp.session_id == session.id)) > 0


def _circle_title(seq: int) -> str:
    return f"Integration circle {seq}"


def sync_circles(cohort: Cohort, now: datetime) -> SyncReport:
    """Make the plan's circles match the plan and the anchor.

    Future circles without attendance are created or updated in place (their calendar sequence
    grows, so invites update); past circles and circles with attendance are never moved; a
    circle no longer in the plan is deleted only if it is in the future and has neither
    attendance nor RSVPs, otherwise it is kept and the report says so. Invites and reminders
    are then queued for every participant with a confirmed seat (idempotent).
    """
    plan = lock_plan(cohort, now)
    report = SyncReport()
    existing = {s.circle_sequence: s for s in plan_circles(cohort)}
    wanted = circle_times(cohort, plan)
    for seq, (start, end) in enumerate(wanted, start=1):
        fields = {"starts_at": start, "ends_at": end, "title": _circle_title(seq),
                  "location": plan.circle_location, "video_url": plan.circle_video_url,
                  "facilitator_id": plan.circle_facilitator_id}
        s = existing.pop(seq, None)
        if s is None:
            if start <= now:
                continue  # never create a circle in the past
            s = CohortSession(cohort_id=cohort.id, kind=SessionKind.INTEGRATION_CIRCLE.value, circle_sequence=seq,
                              calendar_sequence=0, created_at=now, updated_at=now, **fields)
            db.session.add(s)
            report.created.append(s)
            continue
        differs = {k for k, v in fields.items() if getattr(s, k) != v}
        if not differs:
            continue
        kinds = frozenset(({MOVED} if differs & {"starts_at", "ends_at"} else set())
                          | ({PLACE} if differs & {"location", "video_url"} else set()))
        if s.starts_at <= now:
            if s.starts_at != start:
                report.kept.append((s, "it has already taken place"))
            continue
        if _has_attendance(s):
            report.kept.append((s, "attendance has been taken"))
            continue
        old_start = s.starts_at
        for key, value in fields.items():
            setattr(s, key, value)
        s.updated_at = now
        if not kinds:
            continue  # nothing a participant sees (e.g. the facilitator): no new invite, no email
        old_revision = s.calendar_sequence
        s.calendar_sequence = old_revision + 1
        _cancel_revision(s, old_revision, now)
        if MOVED in kinds:
            report.moved.append(s)
        if PLACE in kinds:
            report.place_changed.append(s)
        report.changes.append(CircleChange(seq, kinds, start, old_start, place_text(s), s.id, s.calendar_sequence,
                                           s.venue_tz))
    for seq, s in sorted(existing.items()):  # circles beyond the plan's weeks
        if s.starts_at <= now:
            continue
        if _has_attendance(s):
            report.kept.append((s, "attendance has been taken"))
        elif _has_rsvps(s):
            report.kept.append((s, "participants have answered its RSVP"))
        else:
            _cancel_revision(s, s.calendar_sequence, now)
            report.removed.append(seq)
            report.changes.append(CircleChange(seq, frozenset({REMOVED}), s.starts_at, venue_tz=s.venue_tz))
            db.session.delete(s)
    db.session.flush()
    report.changes[:0] = [CircleChange(s.circle_sequence, frozenset({ADDED}), s.starts_at, None, place_text(s),
                                       s.id, 0, s.venue_tz) for s in report.created]
    report.changes.sort(key=lambda c: c.sequence)
    told: set[int] = set()
    for s in report.created + report.moved + report.place_changed:
        if s.id not in told:
            told.add(s.id)
            _emit_scheduled(s, now, "created" if s in report.created else "moved")
    if report.created or report.moved or report.place_changed or report.removed or report.kept:
        audit.record("integration_plan.circles_synced", object_type="cohort", object_id=cohort.id, now=now,
                     details={"created": len(report.created), "moved": len(report.moved),
                              "place_changed": len(report.place_changed), "removed": report.removed,
                              "kept": [s.circle_sequence for s, _ in report.kept]})
    for enr in circle_members(cohort):
        told = bool(report.changes) and _has_invites(enr)
        schedule_circle_messages(enr, now)
        if told:  # one email listing the changes instead of a new invite per changed circle
            outbox.cancel(dedupe_keys=[_key(s, s.calendar_sequence, enr, "invite")
                                       for s in report.created + report.moved + report.place_changed], now=now)
            circle_changes.send_update(enr, cohort, report.changes, portal_url=portal_url(), now=now)
            report.updated += 1
    return report


def _emit_scheduled(s: CohortSession, now: datetime, change: str) -> None:
    webhooks.emit("circle.scheduled", {
        "session_id": s.id, "cohort_id": s.cohort_id, "title": s.title, "sequence": s.circle_sequence,
        "change": change, "start": s.starts_at.isoformat(), "end": s.ends_at.isoformat(),
        "location": s.location, "video_url": s.video_url}, now=now)


def _has_invites(enr: Enrollment) -> bool:
    """Whether ``enr`` has (or is about to get) invites to this cohort's circles."""
    return db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.dedupe_key.like(f"circle-%-enr-{enr.id}-invite"),
        OutboxMessage.status != OutboxStatus.CANCELLED.value)) > 0


# --------------------------------------------------------------------------------------------
# Who is invited; invites and reminders through the outbox
# --------------------------------------------------------------------------------------------

REMINDERS = (("24h", timedelta(hours=24), "tomorrow"), ("1h", timedelta(hours=1), "in one hour"))


def is_member(enr: Enrollment) -> bool:
    """Participants with a confirmed seat who have not left are invited to the circles."""
    return enr.has_confirmed_seat


def circle_members(cohort: Cohort) -> list[Enrollment]:
    return [e for e in db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.seat == SeatState.CONFIRMED.value)
        .options(selectinload(Enrollment.participant)).order_by(Enrollment.id)) if is_member(e)]


def _key(s: CohortSession, revision: int, enr: Enrollment, what: str) -> str:
    return f"circle-{s.id}-r{revision}-enr-{enr.id}-{what}"


def _cancel_revision(s: CohortSession, revision: int, now: datetime) -> None:
    prefix = f"circle-{s.id}-r{revision}-%"
    keys = list(db.session.scalars(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.dedupe_key.like(prefix), OutboxMessage.status == OutboxStatus.PENDING.value)))
    if keys:
        outbox.cancel(dedupe_keys=keys, now=now)


def place_text(s: CohortSession) -> str:
    parts = [p for p in (s.location, s.video_url) if p]
    return " — ".join(parts) if parts else "Place to be announced"


def portal_url() -> str:
    return f"{urls.base_url()}/me/circles"


def circle_ics(s: CohortSession, enr: Enrollment | None = None, *, method: str = "REQUEST") -> dict:
    cohort = s.cohort
    practice = current_app.config.get("PRACTICE_NAME", "retreat")
    lines = [f"{s.title} — {cohort.retreat.title}, {cohort.title} ({practice})."]
    if s.video_url:
        lines.append(f"Join online: {s.video_url}")
    if s.location:
        lines.append(f"Place: {s.location}")
    lines.append(f"RSVP or say you can't make it: {portal_url()}")
    person = enr.participant if enr is not None else None
    facilitator = s.facilitator
    return ics.event_spec(
        uid=f"circle-{s.id}@retreat", start=s.starts_at, end=s.ends_at, sequence=s.calendar_sequence,
        method=method, summary=f"{s.title} ({cohort.retreat.title})", description="\n".join(lines),
        location=s.location or s.video_url, url=s.video_url,
        organizer_email=facilitator.email if facilitator else "",
        organizer_name=facilitator.name if facilitator else "",
        attendee_email=person.email if person else "", attendee_name=person.name if person else "")


def _invited_before(s: CohortSession, enr: Enrollment) -> bool:
    """Was this participant sent (or queued) an invite to an earlier version of this circle?"""
    if s.calendar_sequence == 0:
        return False
    earlier = [_key(s, rev, enr, "invite") for rev in range(s.calendar_sequence)]
    return db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.dedupe_key.in_(earlier))) > 0


def _context(s: CohortSession, enr: Enrollment) -> dict:
    person, cohort = enr.participant, s.cohort
    return {"participant_name": person.name, "retreat_title": cohort.retreat.title, "cohort_title": cohort.title,
            "circle_title": s.title, "when": venue_time(s.starts_at, s.venue_tz, person.tz),
            "duration_minutes": int((s.ends_at - s.starts_at).total_seconds() // 60),
            "location": s.location, "video_url": s.video_url, "portal_url": portal_url(),
            "updated": _invited_before(s, enr), "circle_id": s.id}


def _rsvp_status(s: CohortSession, enr: Enrollment) -> str | None:
    return db.session.scalar(select(CircleRsvp.status).where(CircleRsvp.session_id == s.id,
                                                             CircleRsvp.enrollment_id == enr.id))


def schedule_circle_messages(enr: Enrollment, now: datetime) -> int:
    """Queue the invite (with the .ics) and the 24 h / 1 h reminders of every future circle for one
    participant. Idempotent (dedupe keys carry the circle's calendar sequence, so a moved circle
    gets a new invite and new reminders once). Reminders are non-essential (an opt-out stops
    them); one that quiet hours would push past the circle's start is not queued; none is queued
    for a circle the participant said they can't make. Returns the number of rows queued or found."""
    if not is_member(enr):
        return 0
    person = enr.participant
    count = 0
    for s in all_circles(enr.cohort):
        if s.starts_at <= now:
            continue
        rev = s.calendar_sequence
        ctx = _context(s, enr)
        common = dict(to_user=person, tz=person.tz, group_key=f"enrollment:{enr.id}", now=now)
        outbox.enqueue(template="circle_invite", dedupe_key=_key(s, rev, enr, "invite"), context=ctx,
                       ics=circle_ics(s, enr), essential=True, **common)
        count += 1
        if _rsvp_status(s, enr) == RsvpStatus.CANT_MAKE_IT.value:
            continue
        for label, before, lead in REMINDERS:
            due = s.starts_at - before
            if due <= now:
                continue
            deferred = quiet_until(due, person.tz)
            if deferred is not None and deferred >= s.starts_at - timedelta(minutes=15):
                continue
            outbox.enqueue(template="circle_reminder", dedupe_key=_key(s, rev, enr, f"reminder-{label}"),
                           due_at=due, context={**ctx, "lead": lead}, essential=False,
                           sms={"template": "circle_reminder", "lead": lead, "start": s.starts_at.isoformat(),
                                "link": portal_url(), "stale_after": s.starts_at}, **common)
            count += 1
    return count


def seat_confirmed(enr: Enrollment, now: datetime) -> None:
    """A participant joined the cohort (seat confirmed): invite them to the circles already planned."""
    if plan_for(enr.cohort) is not None:
        schedule_circle_messages(enr, now)


# --------------------------------------------------------------------------------------------
# Participants: upcoming circles and RSVPs
# --------------------------------------------------------------------------------------------


@dataclass
class CircleView:
    session: CohortSession
    enrollment: Enrollment
    rsvp: CircleRsvp | None


def upcoming_circles(user: User, now: datetime) -> list[CircleView]:
    """The circles of the participant's cohorts that have not ended yet, soonest first."""
    enrs = {e.cohort_id: e for e in db.session.scalars(select(Enrollment).where(
        Enrollment.participant_id == user.id, Enrollment.seat == SeatState.CONFIRMED.value)) if is_member(e)}
    if not enrs:
        return []
    sessions = list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id.in_(list(enrs)), CohortSession.kind == SessionKind.INTEGRATION_CIRCLE.value,
        CohortSession.ends_at > now).options(selectinload(CohortSession.cohort))
        .order_by(CohortSession.starts_at, CohortSession.id)))
    rsvps = {(r.session_id, r.enrollment_id): r for r in db.session.scalars(select(CircleRsvp).where(
        CircleRsvp.session_id.in_([s.id for s in sessions] or [0])))}
    return [CircleView(s, enrs[s.cohort_id], rsvps.get((s.id, enrs[s.cohort_id].id))) for s in sessions]


def participant_circle(user: User, session_id: int) -> tuple[CohortSession, Enrollment]:
    """A circle the participant is invited to (NotFound for anyone else's)."""
    s = db.session.get(CohortSession, session_id)
    if s is None or s.kind != SessionKind.INTEGRATION_CIRCLE.value:
        raise NotFound("No such circle.")
    enr = db.session.scalar(select(Enrollment).where(Enrollment.cohort_id == s.cohort_id,
                                                     Enrollment.participant_id == user.id))
    if enr is None or not is_member(enr):
        raise NotFound("No such circle.")
    return s, enr


def set_rsvp(user: User, session_id: int, *, status: str, note: str, now: datetime) -> CircleRsvp:
    """The participant answers (or changes) their RSVP to one circle. "Can't make it" cancels the
    circle's pending reminders for them; "going" again queues them again."""
    s, enr = participant_circle(user, session_id)
    try:
        status = RsvpStatus(status).value
    except ValueError as exc:
        raise ValidationFailed("Choose “I'll be there” or “I can't make it”.", field="status") from exc
    note = (note or "").strip()
    if len(note) > 300:
        raise ValidationFailed("Keep the note under 300 characters.", field="note")
    if s.ends_at <= now:
        raise Conflict("This circle has already taken place.")
    locking.lock(Enrollment, enr.id)  # one RSVP change per participant at a time
    row = db.session.scalar(select(CircleRsvp).where(CircleRsvp.session_id == s.id,
                                                     CircleRsvp.enrollment_id == enr.id))
    if row is None:
        row = CircleRsvp(session_id=s.id, enrollment_id=enr.id, created_at=now)
        db.session.add(row)
    row.status, row.note, row.answered_at, row.updated_at = status, note, now, now
    db.session.flush()
    keys = [_key(s, s.calendar_sequence, enr, f"reminder-{label}") for label, _, _ in REMINDERS]
    if status == RsvpStatus.CANT_MAKE_IT.value:
        outbox.cancel(dedupe_keys=keys, now=now)
    else:
        db.session.execute(update(OutboxMessage).where(
            OutboxMessage.dedupe_key.in_(keys), OutboxMessage.status == OutboxStatus.CANCELLED.value,
            OutboxMessage.due_at > now).values(status=OutboxStatus.PENDING.value, cancelled_at=None,
                                               updated_at=now).execution_options(synchronize_session="fetch"))
        schedule_circle_messages(enr, now)
    return row


# --------------------------------------------------------------------------------------------
# Facilitators: RSVPs next to the roster
# --------------------------------------------------------------------------------------------


@dataclass
class RsvpRow:
    enrollment: Enrollment
    rsvp: CircleRsvp | None
    attendance: Attendance | None


def rsvp_rows(s: CohortSession) -> list[RsvpRow]:
    members = circle_members(s.cohort)
    rsvps = {r.enrollment_id: r for r in db.session.scalars(select(CircleRsvp).where(CircleRsvp.session_id == s.id))}
    marks = {a.enrollment_id: a for a in db.session.scalars(select(Attendance).where(Attendance.session_id == s.id))}
    rows = [RsvpRow(e, rsvps.get(e.id), marks.get(e.id)) for e in members]
    return sorted(rows, key=lambda r: r.enrollment.participant.name.lower())


def rsvp_counts(sessions: list[CohortSession]) -> dict[int, int]:
    """Number of "can't make it" answers per circle."""
    if not sessions:
        return {}
    return dict(db.session.execute(select(CircleRsvp.session_id, func.count()).where(
        CircleRsvp.session_id.in_([s.id for s in sessions]),
        CircleRsvp.status == RsvpStatus.CANT_MAKE_IT.value).group_by(CircleRsvp.session_id)).all())


def session_removed(s: CohortSession, now: datetime) -> None:
    """A circle is being deleted by hand: its pending invites and reminders go too."""
    keys = list(db.session.scalars(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.dedupe_key.like(f"circle-{s.id}-r%"), OutboxMessage.status == OutboxStatus.PENDING.value)))
    if keys:
        outbox.cancel(dedupe_keys=keys, now=now)


# --------------------------------------------------------------------------------------------
# Reacting to the cohort (retreat.core.signals)
# --------------------------------------------------------------------------------------------


@signals.seat_confirmed.connect(order=10)
def _invite_on_joining(enr: Enrollment, *, now: datetime) -> None:
    seat_confirmed(enr, now)  # invites to the circles already planned


@signals.cohort_schedule_changed.connect(order=10)
def _on_schedule_changed(cohort: Cohort, *, now: datetime, removed_session: CohortSession | None = None,
                         **_) -> None:
    """A circle being deleted by hand takes its messages along; any other change re-plans."""
    if removed_session is not None:
        session_removed(removed_session, now)
    else:
        plan_changed(cohort, now)
