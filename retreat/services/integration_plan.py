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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from retreat.extensions import db
from retreat.models.cohorts import Cohort, CohortSession, SessionKind
from retreat.models.integration import IntegrationPlan
from retreat.timeutil import zone

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
        db.session.add(plan)
        db.session.flush()
    return plan


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
