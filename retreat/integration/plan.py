"""The cohort's integration plan: when the follow-ups are due and when the weekly circles meet
(the circles themselves, their invites and RSVPs: ``retreat.integration.circles``).

Everything is anchored on the end of the cohort's last dosing session (``anchor``); without a
dosing session, on the cohort's last day at 18:00 cohort-local time. Local times are computed in
the cohort's IANA zone and stored/returned in UTC, so a circle at 18:00 stays at 18:00 local
across a DST change (its UTC time shifts).

``touchpoints(cohort)`` is the contract the follow-up scheduler builds on:

========================  ===================================================================
kind                      due (UTC)
========================  ===================================================================
``checkin_24h``           anchor + 24 elapsed hours (per person: their discharge + 24 h)
``checkin_72h``           anchor + 72 elapsed hours (per person: their discharge + 72 h)
``survey_post``           (anchor's local date + 1 day) at 10:00 cohort-local
``survey_month_1``        (anchor's local date + 1 calendar month) at 10:00 cohort-local
``survey_month_3``        (anchor's local date + 3 calendar months) at 10:00 cohort-local
========================  ===================================================================

A participant the provider discharged from the last dosing session (``signals.participant_discharged``)
gets the two check-ins counted from their own discharge instead (``CHECKIN_AFTER``; the follow-up
scheduler applies it, ``retreat.integration.discharge``).

A month step clamps to the month's last day (31 Jan + 1 month = 28/29 Feb). A touchpoint the
plan switched off is left out of the list. Listeners in ``PLAN_LISTENERS`` are called with
``(cohort, now)`` after any change of the plan or of what it is anchored on (cohort dates,
dosing sessions), in the caller's transaction.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.cohorts.models import (
    Cohort,
    CohortSession,
    SessionKind,
)
from retreat.core import locking
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.database import parse_id
from retreat.extensions import db
from retreat.integration.models import IntegrationPlan
from retreat.timeutil import zone

CHECKIN_AFTER = {"checkin_24h": timedelta(hours=24), "checkin_72h": timedelta(hours=72)}
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
    locked = locking.lock(IntegrationPlan, plan.id)
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
        "checkin_24h": start + CHECKIN_AFTER["checkin_24h"],
        "checkin_72h": start + CHECKIN_AFTER["checkin_72h"],
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
    "checkin_24h": "Check-in 24 hours after each person's discharge from the last dosing session",
    "checkin_72h": "Check-in 72 hours after each person's discharge from the last dosing session",
    "survey_post": "PHQ-9 and GAD-7 right after the retreat",
    "survey_month_1": "PHQ-9 and GAD-7 after 1 month",
    "survey_month_3": "PHQ-9 and GAD-7 after 3 months",
}
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TRUE = {"1", "on", "true", "yes", "y"}


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


def save_plan(plan: IntegrationPlan, data: Mapping, *, expected_version: int | str | None, actor: User,
              now: datetime) -> IntegrationPlan:
    """Save a facilitator's edit of the plan (locked; its version goes up). The edit is refused
    (Conflict) if someone saved since the form was loaded (``expected_version``); bad values raise
    ValidationFailed and change nothing. Moving the circles and telling the listeners is the
    caller's next step (``circles.update_plan``)."""
    try:
        expected = int(str(expected_version))
    except (TypeError, ValueError):
        expected = -1
    values = parse_plan_form(data)
    locked = locking.lock(IntegrationPlan, plan.id)
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
    return locked
