"""The one slot service: free consult times, the schedules they come from, and their cache.

Every page and API route asks ``free_slots`` for free times; ``book`` and ``reschedule``
(``retreat.consults.booking``) re-check the chosen time with ``is_free`` on a schedule read under
the facilitator's lock. The lists are cached (``cached_slots``) under ``slots_cache_version``: on
PostgreSQL a count of change notifications (no query on a hit), else every bookable facilitator's
``slots_version``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import (
    Date,
    Integer,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)

from retreat.accounts.models import Role, User
from retreat.consults import availability, slot_changes
from retreat.consults.availability import DayOverride, Schedule
from retreat.consults.models import (
    AvailabilityOverride,
    AvailabilityRule,
    Consultation,
    ConsultSettings,
    ConsultStatus,
)
from retreat.core.cache import Cache
from retreat.core.errors import Conflict, ValidationFailed
from retreat.database import UTCDateTime
from retreat.extensions import db
from retreat.timeutil import is_valid_zone, zone

MAX_RANGE_DAYS = 62


class SlotUnavailable(Conflict):
    """The chosen time is not free: ``reason`` is taken | too_soon | unavailable."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class Slot(NamedTuple):
    start: datetime
    end: datetime
    facilitator_id: int



def holds_time():
    return Consultation.status != ConsultStatus.CANCELLED.value


_known_zone = lru_cache(maxsize=1024)(is_valid_zone)
_SCHEDULE_COLUMNS = ("facilitator_id", "tz", "duration_minutes", "buffer_before_minutes", "buffer_after_minutes",
                     "min_notice_minutes", "horizon_days", "daily_cap", "slot_interval_minutes", "accepting_bookings")


def _schedule(settings) -> Schedule:
    """A Schedule from a ConsultSettings row (an ORM object or a plain row of _SCHEDULE_COLUMNS)."""
    return Schedule(
        facilitator_id=settings.facilitator_id,
        tz=settings.tz if _known_zone(settings.tz) else "UTC",
        duration=timedelta(minutes=settings.duration_minutes),
        buffer_before=timedelta(minutes=settings.buffer_before_minutes),
        buffer_after=timedelta(minutes=settings.buffer_after_minutes),
        min_notice=timedelta(minutes=settings.min_notice_minutes),
        horizon=timedelta(days=settings.horizon_days),
        daily_cap=settings.daily_cap,
        interval=timedelta(minutes=settings.slot_interval_minutes),
    )


@lru_cache(maxsize=4)
def _details_statement(rules: bool, exclude: bool):
    """One statement (UNION ALL) for the weekly rules (optionally), the date overrides and the active
    consults' blocked ranges of the facilitators ``:ids``: one round trip, not three. Built once (with
    bound parameters), since constructing it costs more than running it.

    Rows: (kind 'r' | 'o' | 'c', facilitator_id, a, b, c, day, override kind, start_at, blocked_start,
    blocked_end), with a, b, c = weekday, start and end minute of a rule, or -, start and end minute of
    an override."""
    none_int, none_day, none_kind, none_at = (cast(null(), Integer()), cast(null(), Date()),
                                              cast(null(), String()), cast(null(), UTCDateTime()))
    ids = bindparam("ids", expanding=True)
    parts = []
    if rules:
        r = AvailabilityRule
        parts.append(select(literal_column("'r'"), r.facilitator_id, r.weekday, r.start_minute, r.end_minute,
                            none_day, none_kind, none_at, none_at, none_at).where(r.facilitator_id.in_(ids)))
    o = AvailabilityOverride
    parts.append(select(literal_column("'o'"), o.facilitator_id, none_int, o.start_minute, o.end_minute, o.day, o.kind,
                        none_at, none_at, none_at)
                 .where(o.facilitator_id.in_(ids), o.day.between(bindparam("lo_day"), bindparam("hi_day"))))
    c = Consultation
    busy = (select(literal_column("'c'"), c.facilitator_id, none_int, none_int, none_int, none_day, none_kind,
                   c.start_at, c.blocked_start, c.blocked_end)
            .where(c.facilitator_id.in_(ids), holds_time(), c.blocked_end > bindparam("lo_at"),
                   c.blocked_start < bindparam("hi_at")))
    if exclude:
        busy = busy.where(c.id != bindparam("exclude_id"))
    parts.append(busy)
    return union_all(*parts)


def _details_query(ids: list[int], range_start: datetime, range_end: datetime, *, rules: bool,
                   exclude_consult_id: int | None = None):
    """Rules (optionally), overrides and busy ranges of ``ids`` around [range_start, range_end)."""
    params = {"ids": ids, "lo_day": (range_start - timedelta(days=2)).date(),
              "hi_day": (range_end + timedelta(days=2)).date(), "lo_at": range_start - timedelta(days=2),
              "hi_at": range_end + timedelta(days=2)}
    if exclude_consult_id is not None:
        params["exclude_id"] = exclude_consult_id
    return db.session.execute(_details_statement(rules, exclude_consult_id is not None), params)


def load_schedules(range_start: datetime, range_end: datetime, *, facilitator_ids=None,
                   exclude_consult_id: int | None = None, settings_rows=None) -> list[Schedule]:
    """Everything the slot engine needs for the facilitators who take bookings, in two queries (the
    settings with their weekly rules, then overrides and consults), or one when ``settings_rows`` are
    given (the booking path, which has just locked them)."""
    rules: list = []
    if settings_rows is None:  # settings (plain columns, no ORM objects) and weekly rules together
        rule_columns = (AvailabilityRule.weekday, AvailabilityRule.start_minute, AvailabilityRule.end_minute)
        table = ConsultSettings.__table__
        stmt = (select(*[table.c[name] for name in _SCHEDULE_COLUMNS], *rule_columns)
                .join(User, User.id == table.c.facilitator_id)
                .outerjoin(AvailabilityRule, AvailabilityRule.facilitator_id == table.c.facilitator_id)
                .where(table.c.accepting_bookings.is_(True), User.role == Role.FACILITATOR.value,
                       User.is_active_account.is_(True)))
        if facilitator_ids is not None:
            stmt = stmt.where(table.c.facilitator_id.in_(list(facilitator_ids)))
        rows = db.session.execute(stmt).all()
        width = len(_SCHEDULE_COLUMNS)
        settings_rows = list({row.facilitator_id: row for row in rows}.values())
        rules = [(row.facilitator_id, *row[width:]) for row in rows if row[width] is not None]
        with_rules = False
    else:
        with_rules = True
    if not settings_rows:
        return []
    schedules = {s.facilitator_id: _schedule(s) for s in settings_rows}
    ids = list(schedules)
    for fid, weekday, start_minute, end_minute in rules:
        schedules[fid].weekly.setdefault(weekday, []).append((start_minute, end_minute))
    per_day: dict[int, Counter] = defaultdict(Counter)
    rows = _details_query(ids, range_start, range_end, rules=with_rules, exclude_consult_id=exclude_consult_id)
    for kind, fid, a, b, c, day, override_kind, start_at, blocked_start, blocked_end in rows:
        sched = schedules[fid]
        if kind == "c":
            sched.busy.append((blocked_start, blocked_end))
            per_day[fid][start_at.astimezone(sched.zone).date()] += 1
        elif kind == "o":
            sched.overrides.setdefault(day, []).append(DayOverride(override_kind, b, c))
        else:
            sched.weekly.setdefault(a, []).append((b, c))
    for fid, counts in per_day.items():
        schedules[fid].booked_per_day = dict(counts)
    return [schedules[i] for i in sorted(schedules)]


def free_slots(range_start: datetime, range_end: datetime, now: datetime, *, facilitator_ids=None,
               exclude_consult_id: int | None = None) -> list[Slot]:
    """The one slot service: free (start, end, facilitator) in [range_start, range_end), sorted by time."""
    out: list[Slot] = []
    for sched in load_schedules(range_start, range_end, facilitator_ids=facilitator_ids,
                                exclude_consult_id=exclude_consult_id):
        duration, fid = sched.duration, sched.facilitator_id
        out.extend([Slot(t, t + duration, fid) for t in availability.free_starts(sched, range_start, range_end, now)])
    out.sort(key=lambda s: (s.start, s.facilitator_id))
    return out


# ------------------------------------------------------------------------------------------
# Slot cache: per process, keyed by every bookable facilitator's ``slots_version`` and the minute
# ------------------------------------------------------------------------------------------

SLOT_CACHE_SIZE = 512
# The minute in the key bounds staleness; the time limit only lets unused minutes go.
SLOT_CACHE = Cache("slot lists", max_entries=SLOT_CACHE_SIZE, ttl=120)


def slots_versions(facilitator_id: int | None = None) -> tuple:
    """(facilitator, slots_version, created) of everyone whose times a slot list shows, in one small query.

    Any write that changes free times bumps the version in the same transaction (see the
    after-flush hook in ``retreat.consults.models``), so a cached list is only ever reused while
    nothing changed. Starting, stopping or deactivating a facilitator changes the set itself.
    """
    table = ConsultSettings.__table__
    # created_at too: a settings row deleted and written again (or rolled back) starts again at 0.
    stmt = (select(table.c.facilitator_id, table.c.slots_version, table.c.created_at).join(User, User.id == table.c.facilitator_id)
            .where(table.c.accepting_bookings.is_(True), User.role == Role.FACILITATOR.value,
                   User.is_active_account.is_(True)).order_by(table.c.facilitator_id))
    if facilitator_id is not None:
        stmt = stmt.where(table.c.facilitator_id == facilitator_id)
    return tuple(tuple(row) for row in db.session.execute(stmt))


def slots_cache_version(facilitator_id: int | None = None):
    """The slot cache's version, read before computing a list: on PostgreSQL with the listener
    listening, (app, notifications seen, this process's own changes), with no query and no
    transaction (``retreat.consults.slot_changes``: its docstring gives the staleness bound);
    otherwise ``slots_versions`` (one small query)."""
    version = slot_changes.current_version()
    return slots_versions(facilitator_id) if version is None else version


def cached_slots(key: tuple, now: datetime, compute, *, version=None):
    """``compute()`` once per ``key``, ``version`` (``slots_versions``) and minute. The minute bounds how
    stale a list can be with respect to minimum notice (at most 60 s); a booking re-checks its time
    under the facilitator's lock and the database constraint, so a stale slot can only ever be
    refused, never double-booked."""
    return SLOT_CACHE.get_or_compute((key, now.replace(second=0, microsecond=0)), compute, version)


def clear_slot_cache() -> None:
    SLOT_CACHE.clear()


def validate_zone(tz: str | None, field: str = "tz") -> str:
    if not is_valid_zone(tz):
        raise ValidationFailed("Choose a valid time zone, such as America/Denver.", field=field)
    return tz


def date_range_bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """[start 00:00, end + 1 day 00:00) in ``tz``, as UTC instants; at most MAX_RANGE_DAYS days."""
    validate_zone(tz)
    if end < start:
        raise ValidationFailed("The end date must not be before the start date.", field="end")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(f"Ask for at most {MAX_RANGE_DAYS} days at a time.", field="end")
    z = zone(tz)
    return availability.local_instant(start, 0, z), availability.local_instant(end + timedelta(days=1), 0, z)


def slots_for_dates(start: date, end: date, tz: str, now: datetime, *, facilitator_id: int | None = None) -> list[Slot]:
    lo, hi = date_range_bounds(start, end, tz)
    ids = None if facilitator_id is None else [facilitator_id]
    return free_slots(lo, hi, now, facilitator_ids=ids)


def next_free_slots(after: datetime, now: datetime, *, limit: int = 6, facilitator_id: int | None = None,
                    days: int = 21, distinct_times: bool = True) -> list[Slot]:
    """The next few free times after ``after`` (for "that time was just taken")."""
    ids = None if facilitator_id is None else [facilitator_id]
    slots = free_slots(after, after + timedelta(days=days), now, facilitator_ids=ids)
    out, seen = [], set()
    for s in slots:
        if distinct_times and s.start in seen:
            continue
        seen.add(s.start)
        out.append(s)
        if len(out) >= limit:
            break
    return out


def bookable_facilitators() -> list[User]:
    return list(db.session.scalars(
        select(User).join(ConsultSettings, ConsultSettings.facilitator_id == User.id)
        .where(ConsultSettings.accepting_bookings.is_(True), User.role == Role.FACILITATOR.value,
               User.is_active_account.is_(True))
        .order_by(User.name)
    ))


def round_robin_order(facilitator_ids, now: datetime) -> list[int]:
    """Fairness for "whoever is free": fewest upcoming consults first, then least recently booked."""
    ids = list(dict.fromkeys(facilitator_ids))
    if len(ids) <= 1:
        return ids
    rows = db.session.execute(
        select(Consultation.facilitator_id, func.count(Consultation.id), func.max(Consultation.created_at))
        .where(Consultation.facilitator_id.in_(ids), Consultation.status == ConsultStatus.BOOKED.value,
               Consultation.start_at >= now)
        .group_by(Consultation.facilitator_id)
    )
    stats = {fid: (n, last) for fid, n, last in rows}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def key(fid):
        n, last = stats.get(fid, (0, None))
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return (n, last or epoch, fid)

    return sorted(ids, key=key)


def why_not_free(schedule: Schedule, start: datetime, now: datetime) -> SlotUnavailable:
    if start < now + schedule.min_notice:
        hours = int(schedule.min_notice.total_seconds() // 3600)
        return SlotUnavailable(f"That time is too soon: please book at least {hours} hours ahead.", reason="too_soon")
    open_schedule = replace(schedule, busy=[], booked_per_day={})
    if start in availability.free_starts(open_schedule, start, start + timedelta(microseconds=1), now):
        return SlotUnavailable("Sorry, that time was just taken.", reason="taken")
    return SlotUnavailable("That time is not available for booking.", reason="unavailable")


def is_free(schedule: Schedule, start: datetime, now: datetime) -> bool:
    return start in availability.free_starts(schedule, start, start + timedelta(microseconds=1), now)
