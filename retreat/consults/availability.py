"""The slot engine: pure functions, no database, so every rule is easy to test in isolation.

A facilitator's ``Schedule`` holds wall-clock windows in their own IANA zone, date overrides,
the consult length, buffers, minimum notice, horizon, daily cap, the start-time step and the
blocked ranges of their active consults. ``free_starts`` turns it into UTC start instants.

Daylight-saving rules, chosen deliberately:

* A window is one continuous stretch of real time, from the first moment the facilitator's
  clock reads its start to the last moment it reads its end. Slots are stepped in real
  (elapsed) time from the window's start, so a call always lasts its real duration.
* A wall-clock time that does not exist (skipped when clocks spring forward) means the instant
  the clock jumps: a window "01:00-02:30" on the night clocks go from 02:00 to 03:00 ends at
  03:00 new time, and "02:30-05:00" starts at 03:00.
* A wall-clock time that happens twice (clocks fall back) means its first occurrence for a
  window start and its second occurrence for a window end, so the window covers both. Both
  occurrences of a repeated time can be offered; pages label them with the zone abbreviation
  (e.g. 01:30 MDT and 01:30 MST).
* Days, caps and overrides are the facilitator's local dates.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from retreat import timeutil
from retreat.consults.settings import as_duration, default

MINUTES_PER_DAY = 24 * 60
Window = tuple[int, int]  # minutes after local midnight, end exclusive, end may be 1440


cached_zone = timeutil.cached_zone


@dataclass(frozen=True)
class DayOverride:
    kind: str  # off | blocked | extra
    start_minute: int | None = None
    end_minute: int | None = None


@dataclass
class Schedule:
    facilitator_id: int
    tz: str
    # Defaults: the settings' defaults (retreat.consults.settings), as durations.
    duration: timedelta = as_duration("duration_minutes")
    buffer_before: timedelta = as_duration("buffer_before_minutes")
    buffer_after: timedelta = as_duration("buffer_after_minutes")
    min_notice: timedelta = as_duration("min_notice_minutes")
    horizon: timedelta = as_duration("horizon_days")
    daily_cap: int | None = default("daily_cap")
    interval: timedelta = as_duration("slot_interval_minutes")
    weekly: dict[int, list[Window]] = field(default_factory=dict)  # weekday (0 = Monday) -> windows
    overrides: dict[date, list[DayOverride]] = field(default_factory=dict)
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)  # blocked ranges, UTC
    booked_per_day: dict[date, int] = field(default_factory=dict)  # local date -> active consults

    def __post_init__(self):
        self.zone = cached_zone(self.tz)


# ------------------------------------------------------------------------------------------
# Wall clock -> instants
# ------------------------------------------------------------------------------------------


def _transition_in_gap(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The instant between two UTC instants at which ``zone``'s offset changes (bisection)."""
    lo, hi = before, after
    off_lo = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == off_lo:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def local_instant(day: date, minute: int, zone: ZoneInfo, *, edge: str = "start") -> datetime:
    """The UTC instant at which the wall clock in ``zone`` reads ``day`` + ``minute``.

    ``edge`` says which occurrence of a repeated time is meant ("start": the first, "end": the
    last); a skipped time means the instant the clock jumps over it.
    """
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=minute // MINUTES_PER_DAY), minute % MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first.astimezone(zone).replace(tzinfo=None) != wall:
        # Skipped time: fold=0 reads it with the old offset (later instant), fold=1 with the new.
        lo, hi = sorted((first, second))
        return _transition_in_gap(lo, hi, zone)
    return first if edge == "start" else second


def is_nonexistent(day: date, minute: int, zone: ZoneInfo) -> bool:
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def is_ambiguous(day: date, minute: int, zone: ZoneInfo) -> bool:
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    a = wall.replace(tzinfo=zone, fold=0)
    b = wall.replace(tzinfo=zone, fold=1)
    return a.utcoffset() != b.utcoffset() and not is_nonexistent(day, minute, zone)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants of the start of ``day`` and of the next day in ``zone``."""
    return local_instant(day, 0, zone), local_instant(day + timedelta(days=1), 0, zone)


# ------------------------------------------------------------------------------------------
# Windows
# ------------------------------------------------------------------------------------------


def merge_windows(windows: Iterable[Window]) -> list[Window]:
    out: list[list[int]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def subtract_window(windows: list[Window], cut: Window) -> list[Window]:
    cs, ce = cut
    out: list[Window] = []
    for s, e in windows:
        if ce <= s or cs >= e:
            out.append((s, e))
            continue
        if s < cs:
            out.append((s, cs))
        if ce < e:
            out.append((ce, e))
    return out


def day_windows(schedule: Schedule, day: date) -> list[Window]:
    """The local windows of ``day`` after overrides: off clears the weekly hours, extra adds, blocked removes."""
    windows = list(schedule.weekly.get(day.weekday(), []))
    overrides = schedule.overrides.get(day, [])
    if any(o.kind == "off" for o in overrides):
        windows = []
    windows += [(o.start_minute, o.end_minute) for o in overrides if o.kind == "extra"]
    windows = merge_windows(windows)
    for o in overrides:
        if o.kind == "blocked":
            windows = subtract_window(windows, (o.start_minute, o.end_minute))
    return windows


# ------------------------------------------------------------------------------------------
# Free start instants
# ------------------------------------------------------------------------------------------


class _Busy:
    """Fast overlap test against blocked ranges, in POSIX seconds."""

    def __init__(self, ranges: Sequence[tuple[datetime, datetime]]):
        spans = sorted((s.timestamp(), e.timestamp()) for s, e in ranges)
        self.starts = [s for s, _ in spans]
        self.max_end: list[float] = []
        running = float("-inf")
        for _, e in spans:
            running = max(running, e)
            self.max_end.append(running)

    def overlaps(self, start: float, end: float) -> bool:
        i = bisect_left(self.starts, end)  # ranges starting before `end`
        return i > 0 and self.max_end[i - 1] > start


def free_starts(schedule: Schedule, range_start: datetime, range_end: datetime, now: datetime) -> list[datetime]:
    """Every UTC instant in [range_start, range_end) at which a consult may start.

    Arithmetic runs on POSIX seconds (exact for whole minutes): this is the hot loop of the
    booking page and the slots API.
    """
    zone = schedule.zone
    earliest = max(range_start, now + schedule.min_notice)
    latest = min(range_end, now + schedule.horizon + timedelta(microseconds=1))  # horizon is inclusive
    if earliest >= latest:
        return []
    busy = _Busy(schedule.busy)
    booked = schedule.booked_per_day
    lo, hi = earliest.timestamp(), latest.timestamp()
    duration = schedule.duration.total_seconds()
    before, after = schedule.buffer_before.total_seconds(), schedule.buffer_after.total_seconds()
    step = schedule.interval.total_seconds()
    out: list[float] = []
    day = (earliest.astimezone(zone) - timedelta(days=1)).date()
    last_day = (latest.astimezone(zone) + timedelta(days=1)).date()
    next_midnight = local_instant(day, 0, zone).timestamp()
    while day <= last_day:
        midnight, next_midnight = next_midnight, local_instant(day + timedelta(days=1), 0, zone).timestamp()
        plain_day = next_midnight - midnight == 86400  # no clock change today: wall minutes map directly
        if schedule.daily_cap is None or booked.get(day, 0) < schedule.daily_cap:
            for ws, we in day_windows(schedule, day):
                if plain_day:
                    w_start, w_end = midnight + ws * 60, midnight + we * 60
                else:
                    w_start = local_instant(day, ws, zone, edge="start").timestamp()
                    w_end = local_instant(day, we, zone, edge="end").timestamp()
                t = w_start
                if t < lo:  # jump to the first step at or after the earliest allowed start
                    t += -(-(lo - t) // step) * step
                while t + duration <= w_end and t < hi:
                    if not busy.overlaps(t - before, t + duration + after):
                        out.append(t)
                    t += step
        day += timedelta(days=1)
    out.sort()
    return [datetime.fromtimestamp(t, UTC) for t in out]
