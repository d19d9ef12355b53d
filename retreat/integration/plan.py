"""The cohort's integration plan: when the follow-ups are due and when the weekly circles meet.

Everything is anchored on the end of the cohort's last dosing session (``anchor``); without a
dosing session, on the cohort's last day at 18:00 cohort-local time. Local times are computed in
the cohort's IANA zone and stored/returned in UTC, so a circle at 18:00 stays at 18:00 local
across a DST change (its UTC time shifts).

``touchpoints(cohort)`` is the contract the follow-up scheduler builds on:

========================  ===================================================================
kind                      due (UTC)
========================  ===================================================================
``checkin_24h``           anchor + 24 elapsed hours
``checkin_72h``           anchor + 72 elapsed hours
``survey_post``           (anchor's local date + 1 day) at 10:00 cohort-local
``survey_month_1``        (anchor's local date + 1 calendar month) at 10:00 cohort-local
``survey_month_3``        (anchor's local date + 3 calendar months) at 10:00 cohort-local
========================  ===================================================================

A month step clamps to the month's last day (31 Jan + 1 month = 28/29 Feb). A touchpoint the
plan switched off is left out of the list. Listeners in ``PLAN_LISTENERS`` are called with
``(cohort, now)`` after any change of the plan or of what it is anchored on (cohort dates,
dosing sessions), in the caller's transaction.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import (
    Attendance,
    Cohort,
    CohortSession,
    Enrollment,
    EnrollmentStatus,
    SeatState,
    SessionKind,
)
from retreat.core import signals, urls
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.database import parse_id
from retreat.extensions import db
from retreat.integration.models import CircleRsvp, IntegrationPlan, RsvpStatus
from retreat.messaging import ics, outbox
from retreat.messaging.dispatcher import quiet_until
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.timeutil import human_time, zone

TOUCHPOINT_KINDS = ("checkin_24h", "checkin_72h", "survey_post", "survey_month_1", "survey_month_3")
SURVEY_LOCAL_TIME = time(10, 0)
ANCHOR_FALLBACK_LOCAL_TIME = time(18, 0)

# Template for a new cohort's plan (facilitators edit it afterwards).
TEMPLATE = {
    "circle_weeks": 6,
    "circle_weekday": 1,  # Tuesday
    "circle_local_time": time(18, 0),
    "circle_duration_minutes": 90,
    "circle_location": "",
    "circle_video_url": "",
    "checkin_24h": True,
    "checkin_72h": True,
    "survey_post": True,
    "survey_month_1": True,
    "survey_month_3": True,
}

# Called with (cohort, now) after the plan or its anchor changed. Other modules append to it
# (e.g. the follow-up scheduler re-syncs its outbox rows); keep listeners idempotent.
PLAN_LISTENERS: list[Callable[[Cohort, datetime], None]] = []


@dataclass(frozen=True)
class Touchpoint:
    kind: str
    due_at_utc: datetime


# --------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------


def local_to_utc(day: date, at: time, tz_name: str) -> datetime:
    """A wall-clock time on a day in a zone, as UTC (an hour skipped by DST resolves forward)."""
    return datetime.combine(day, at).replace(tzinfo=zone(tz_name), fold=0).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


def plan_for(cohort: Cohort) -> IntegrationPlan | None:
    return db.session.scalar(select(IntegrationPlan).where(IntegrationPlan.cohort_id == cohort.id))


def ensure_plan(cohort: Cohort, now: datetime) -> IntegrationPlan:
    """The cohort's plan, created from the template the first time it is asked for."""
    plan = plan_for(cohort)
    if plan is None:
        plan = IntegrationPlan(cohort_id=cohort.id, version=1, created_at=now, updated_at=now, **TEMPLATE)
        # A savepoint makes a concurrent first creation (unique cohort_id) a no-op, not an error.
        try:
            with db.session.begin_nested():
                db.session.add(plan)
                db.session.flush()
        except IntegrityError:
            plan = plan_for(cohort)
            if plan is None:
                raise
    return plan


def lock_plan(cohort: Cohort, now: datetime) -> IntegrationPlan:
    """The cohort's plan, row-locked for the rest of the transaction (serialises syncs and edits)."""
    plan = ensure_plan(cohort, now)
    locked = db.session.scalar(select(IntegrationPlan).where(IntegrationPlan.id == plan.id)
                               .with_for_update().execution_options(populate_existing=True))
    if locked is None:
        raise NotFound("No such integration plan.")
    return locked


def notify_listeners(cohort: Cohort, now: datetime) -> None:
    for listener in list(PLAN_LISTENERS):
        listener(cohort, now)


# --------------------------------------------------------------------------------------------
# Anchor and touchpoints
# --------------------------------------------------------------------------------------------


def dosing_sessions(cohort: Cohort) -> list[CohortSession]:
    return list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == SessionKind.DOSING.value)
        .order_by(CohortSession.ends_at)))


def anchor(cohort: Cohort) -> datetime:
    """End of the last dosing session (UTC); fallback: the cohort's last local day at 18:00."""
    dosing = dosing_sessions(cohort)
    if dosing:
        return max(s.ends_at for s in dosing).astimezone(UTC)
    last_day = cohort.ends_at.astimezone(zone(cohort.timezone)).date()
    return local_to_utc(last_day, ANCHOR_FALLBACK_LOCAL_TIME, cohort.timezone)


def touchpoints(cohort: Cohort) -> list[Touchpoint]:
    """The follow-ups the plan has switched on, with their due instants in UTC (see module doc)."""
    plan = plan_for(cohort)
    enabled = {k: getattr(plan, k) if plan is not None else TEMPLATE[k] for k in TOUCHPOINT_KINDS}
    start = anchor(cohort)
    local_day = start.astimezone(zone(cohort.timezone)).date()
    due = {
        "checkin_24h": start + timedelta(hours=24),
        "checkin_72h": start + timedelta(hours=72),
        "survey_post": local_to_utc(local_day + timedelta(days=1), SURVEY_LOCAL_TIME, cohort.timezone),
        "survey_month_1": local_to_utc(add_months(local_day, 1), SURVEY_LOCAL_TIME, cohort.timezone),
        "survey_month_3": local_to_utc(add_months(local_day, 3), SURVEY_LOCAL_TIME, cohort.timezone),
    }
    return [Touchpoint(kind, due[kind]) for kind in TOUCHPOINT_KINDS if enabled[kind]]


# --------------------------------------------------------------------------------------------
# Editing the plan
# --------------------------------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FLAG_LABELS = {
    "checkin_24h": "Check-in 24 hours after the last dosing session",
    "checkin_72h": "Check-in 72 hours after the last dosing session",
    "survey_post": "PHQ-9 and GAD-7 right after the retreat",
    "survey_month_1": "PHQ-9 and GAD-7 after 1 month",
    "survey_month_3": "PHQ-9 and GAD-7 after 3 months",
}
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TRUE = {"1", "on", "true", "yes", "y"}


@dataclass
class SyncReport:
    created: list[CohortSession] = field(default_factory=list)
    moved: list[CohortSession] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # circle sequences removed
    kept: list[tuple[CohortSession, str]] = field(default_factory=list)  # (circle, why it was left alone)

    @property
    def messages(self) -> list[str]:
        out = []
        for s, why in self.kept:
            out.append(f"Circle {s.circle_sequence} ({s.starts_at:%Y-%m-%d}) was kept as it was: {why}.")
        return out


def _int_field(data: Mapping, key: str, errors: dict, lo: int, hi: int, message: str) -> int | None:
    raw = str(data.get(key, "") or "").strip()
    try:
        value = int(raw)
    except ValueError:
        errors[key] = [message]
        return None
    if not lo <= value <= hi:
        errors[key] = [message]
        return None
    return value


def _flag(data: Mapping, key: str) -> bool:
    getlist = getattr(data, "getlist", None)
    values = getlist(key) if getlist else [data.get(key)]
    return any(str(v or "").strip().lower() in _TRUE for v in values)


def parse_plan_form(data: Mapping) -> dict:
    """Validate the plan form's raw values; ValidationFailed with one message per bad field."""
    errors: dict[str, list[str]] = {}
    values: dict = {}
    values["circle_weeks"] = _int_field(data, "circle_weeks", errors, 1, 52,
                                        "Give the number of weekly circles: 1 to 52.")
    values["circle_weekday"] = _int_field(data, "circle_weekday", errors, 0, 6,
                                          "Choose a weekday (Monday to Sunday).")
    values["circle_duration_minutes"] = _int_field(data, "circle_duration_minutes", errors, 15, 480,
                                                   "A circle lasts between 15 and 480 minutes.")
    match = _TIME_RE.match(str(data.get("circle_local_time", "") or "").strip())
    if match:
        values["circle_local_time"] = time(int(match.group(1)), int(match.group(2)))
    else:
        errors["circle_local_time"] = ["Give the local start time as HH:MM (24-hour clock), e.g. 18:00."]
    location = str(data.get("circle_location", "") or "").strip()
    if len(location) > 200:
        errors["circle_location"] = ["Keep the place under 200 characters."]
    video = str(data.get("circle_video_url", "") or "").strip()
    if len(video) > 500 or (video and not video.startswith(("https://", "http://"))) or any(c.isspace() for c in video):
        errors["circle_video_url"] = ["A video link starts with https:// (at most 500 characters)."]
    if not location and not video and "circle_location" not in errors and "circle_video_url" not in errors:
        errors["circle_location"] = ["Give a place or a video link for the circles."]
    values["circle_location"], values["circle_video_url"] = location, video
    raw_fac = str(data.get("circle_facilitator_id", "") or "").strip()
    values["circle_facilitator_id"] = None
    if raw_fac not in ("", "0"):
        fac_id = parse_id(raw_fac)
        person = db.session.get(User, fac_id) if fac_id else None
        if person is None or person.role not in (Role.FACILITATOR.value, Role.ADMIN.value) or not person.is_active:
            errors["circle_facilitator_id"] = ["Choose a facilitator from the list."]
        else:
            values["circle_facilitator_id"] = person.id
    for key in TOUCHPOINT_KINDS:
        values[key] = _flag(data, key)
    if errors:
        raise ValidationFailed("Check the integration plan.", errors=errors)
    return values


def update_plan(plan: IntegrationPlan, data: Mapping, *, expected_version: int | str | None, actor: User,
                now: datetime) -> SyncReport:
    """A facilitator edits the plan. The edit is refused (Conflict) if someone saved since the form
    was loaded (``expected_version``); bad values raise ValidationFailed and change nothing.
    Circles are re-synced and the plan listeners are told."""
    try:
        expected = int(str(expected_version))
    except (TypeError, ValueError):
        expected = -1
    values = parse_plan_form(data)
    locked = db.session.scalar(select(IntegrationPlan).where(IntegrationPlan.id == plan.id)
                               .with_for_update().execution_options(populate_existing=True))
    if locked is None:
        raise NotFound("No such integration plan.")
    if locked.version != expected:
        raise Conflict("Someone else changed this plan since you opened it. Your changes were not saved: "
                       "review the current plan and make them again.", field="version")
    changed = {k: v for k, v in values.items() if getattr(locked, k) != v}
    for key, value in changed.items():
        setattr(locked, key, value)
    locked.version += 1
    locked.updated_by_id = actor.id
    locked.updated_at = now
    db.session.flush()
    audit.record("integration_plan.updated", actor=actor, object_type="cohort", object_id=locked.cohort_id,
                 details={"fields": sorted(changed), "version": locked.version}, now=now)
    cohort = db.session.get(Cohort, locked.cohort_id)
    return plan_changed(cohort, now)


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
        differs = any(getattr(s, k) != v for k, v in fields.items())
        if not differs:
            continue
        if s.starts_at <= now:
            if s.starts_at != start:
                report.kept.append((s, "it has already taken place"))
            continue
        if _has_attendance(s):
            report.kept.append((s, "attendance has been taken"))
            continue
        old_revision = s.calendar_sequence
        for key, value in fields.items():
            setattr(s, key, value)
        s.calendar_sequence = old_revision + 1
        s.updated_at = now
        _cancel_revision(s, old_revision, now)
        report.moved.append(s)
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
            db.session.delete(s)
    db.session.flush()
    if report.created or report.moved or report.removed or report.kept:
        audit.record("integration_plan.circles_synced", object_type="cohort", object_id=cohort.id, now=now,
                     details={"created": len(report.created), "moved": len(report.moved),
                              "removed": report.removed, "kept": [s.circle_sequence for s, _ in report.kept]})
    for enr in circle_members(cohort):
        schedule_circle_messages(enr, now)
    return report


# --------------------------------------------------------------------------------------------
# Who is invited; invites and reminders through the outbox
# --------------------------------------------------------------------------------------------

REMINDERS = (("24h", timedelta(hours=24), "tomorrow"), ("1h", timedelta(hours=1), "in one hour"))


def is_member(enr: Enrollment) -> bool:
    """Participants with a confirmed seat who have not left are invited to the circles."""
    return enr.seat == SeatState.CONFIRMED.value and EnrollmentStatus(enr.status) not in enrollment.EXITS


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
            "circle_title": s.title, "when": human_time(s.starts_at, person.tz),
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
                           due_at=due, context={**ctx, "lead": lead}, essential=False, **common)
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
    seats.lock_enrollment(enr.id)
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
def _on_schedule_changed(cohort: Cohort, *, now: datetime, removed_session: CohortSession | None = None) -> None:
    """A circle being deleted by hand takes its messages along; any other change re-plans."""
    if removed_session is not None:
        session_removed(removed_session, now)
    else:
        plan_changed(cohort, now)
