"""The slot engine on its own: windows, overrides, buffers, notice, horizon, caps and DST."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from retreat.consults.availability import DayOverride, Schedule, day_windows, free_starts, local_instant

DENVER = ZoneInfo("America/Denver")
BERLIN = ZoneInfo("Europe/Berlin")
MIN = timedelta(minutes=1)


def sched(tz="America/Denver", weekly=None, **kw) -> Schedule:
    kw.setdefault("min_notice", timedelta(0))
    kw.setdefault("buffer_after", timedelta(0))
    kw.setdefault("horizon", timedelta(days=365 * 40))
    return Schedule(facilitator_id=1, tz=tz, weekly=weekly if weekly is not None else {}, **kw)


def starts_on(schedule, day: date, now=None, tz=None):
    """Free starts on one local day of ``tz`` (default: the facilitator's), as local wall strings."""
    z = ZoneInfo(tz or schedule.tz)
    lo, hi = local_instant(day, 0, z), local_instant(day + timedelta(days=1), 0, z)
    now = now or datetime(2000, 1, 1, tzinfo=UTC)
    return [t.astimezone(z).strftime("%H:%M %Z") for t in free_starts(schedule, lo, hi, now)]


MONDAY = date(2026, 6, 1)


def test_weekly_window_offers_every_interval_that_fits():
    s = sched(weekly={0: [(9 * 60, 11 * 60)]})
    assert starts_on(s, MONDAY) == ["09:00 MDT", "09:30 MDT", "10:00 MDT", "10:30 MDT"]
    assert starts_on(s, MONDAY + timedelta(days=1)) == []  # Tuesday has no hours


def test_several_windows_a_day_and_interval_and_duration():
    s = sched(weekly={0: [(9 * 60, 10 * 60), (14 * 60, 15 * 60)]}, duration=timedelta(minutes=45),
              interval=timedelta(minutes=15))
    assert starts_on(s, MONDAY) == ["09:00 MDT", "09:15 MDT", "14:00 MDT", "14:15 MDT"]


def test_window_may_end_at_midnight():
    s = sched(weekly={0: [(23 * 60, 24 * 60)]})
    assert starts_on(s, MONDAY) == ["23:00 MDT", "23:30 MDT"]


def test_existing_consults_block_with_their_buffers():
    s = sched(weekly={0: [(9 * 60, 12 * 60)]}, buffer_before=timedelta(minutes=10), buffer_after=timedelta(minutes=15))
    booked = datetime(2026, 6, 1, 10, 0, tzinfo=DENVER)
    # That consult's blocked range: 09:50 to 10:45.
    s.busy = [(booked - timedelta(minutes=10), booked + timedelta(minutes=45))]
    # A new 09:00 call would block 08:50-09:45: free. 09:30 blocks 09:20-10:15: overlaps.
    # 10:30 blocks 10:20-11:15: overlaps; 11:00 blocks 10:50-11:45: free.
    assert starts_on(s, MONDAY) == ["09:00 MDT", "11:00 MDT", "11:30 MDT"]


def test_adjacent_blocked_ranges_do_not_overlap():
    s = sched(weekly={0: [(9 * 60, 11 * 60)]})
    nine = datetime(2026, 6, 1, 9, 0, tzinfo=DENVER)
    s.busy = [(nine, nine + timedelta(minutes=30))]
    assert starts_on(s, MONDAY) == ["09:30 MDT", "10:00 MDT", "10:30 MDT"]


def test_minimum_notice_and_horizon():
    s = sched(weekly={d: [(9 * 60, 17 * 60)] for d in range(7)}, min_notice=timedelta(hours=12),
              horizon=timedelta(days=3))
    now = datetime(2026, 6, 1, 0, 0, tzinfo=DENVER)  # midnight Monday
    lo, hi = now, now + timedelta(days=10)
    starts = free_starts(s, lo, hi, now)
    assert starts[0] == datetime(2026, 6, 1, 12, 0, tzinfo=DENVER)  # 12 h notice
    assert starts[-1] == datetime(2026, 6, 3, 23, 0, tzinfo=DENVER) - timedelta(hours=6, minutes=30)  # Thu 16:30
    assert max(starts) <= now + timedelta(days=3)


def test_daily_cap_closes_the_day():
    s = sched(weekly={0: [(9 * 60, 12 * 60)], 1: [(9 * 60, 10 * 60)]}, daily_cap=2)
    s.booked_per_day = {MONDAY: 2}
    assert starts_on(s, MONDAY) == []
    assert starts_on(s, MONDAY + timedelta(days=1)) == ["09:00 MDT", "09:30 MDT"]
    s.booked_per_day = {MONDAY: 1}
    assert len(starts_on(s, MONDAY)) == 6


def test_overrides_day_off_blocked_and_extra_hours():
    s = sched(weekly={0: [(9 * 60, 12 * 60)]})
    s.overrides = {MONDAY: [DayOverride("blocked", 10 * 60, 11 * 60), DayOverride("extra", 18 * 60, 19 * 60)]}
    assert starts_on(s, MONDAY) == ["09:00 MDT", "09:30 MDT", "11:00 MDT", "11:30 MDT", "18:00 MDT", "18:30 MDT"]
    s.overrides = {MONDAY: [DayOverride("off")]}
    assert starts_on(s, MONDAY) == []
    s.overrides = {MONDAY: [DayOverride("off"), DayOverride("extra", 20 * 60, 21 * 60)]}
    assert day_windows(s, MONDAY) == [(20 * 60, 21 * 60)]
    sunday = MONDAY + timedelta(days=6)
    s.overrides = {sunday: [DayOverride("extra", 10 * 60, 11 * 60)]}
    assert starts_on(s, sunday) == ["10:00 MDT", "10:30 MDT"]


# ---------------------------------------------------------------------------------------------
# Daylight saving: America/Denver (2026-03-08 spring, 2026-11-01 autumn), Europe/Berlin
# (2026-03-29 spring, 2026-10-25 autumn)
# ---------------------------------------------------------------------------------------------


def test_denver_office_hours_keep_wall_time_across_both_changes():
    s = sched(weekly={d: [(9 * 60, 10 * 60)] for d in range(7)})
    for day in (date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9), date(2026, 10, 31), date(2026, 11, 1)):
        assert starts_on(s, day)[0].startswith("09:00"), day
    z = DENVER
    lo = local_instant(date(2026, 3, 7), 0, z)
    utc = [t.strftime("%d %H:%M") for t in free_starts(s, lo, lo + timedelta(days=3), lo)]
    assert utc[:2] == ["07 16:00", "07 16:30"]  # MST: UTC-7
    assert utc[2:4] == ["08 15:00", "08 15:30"]  # MDT: UTC-6 from the change on
    lo = local_instant(date(2026, 10, 31), 0, z)
    utc = [t.strftime("%d %H:%M") for t in free_starts(s, lo, lo + timedelta(days=2), lo)]
    assert utc == ["31 15:00", "31 15:30", "01 16:00", "01 16:30"]


def test_denver_spring_forward_skips_nonexistent_times_and_keeps_real_durations():
    s = sched(weekly={6: [(0, 5 * 60)]})  # Sunday 00:00-05:00 on the night 02:00 becomes 03:00
    starts = starts_on(s, date(2026, 3, 8))
    assert starts == ["00:00 MST", "00:30 MST", "01:00 MST", "01:30 MST",
                      "03:00 MDT", "03:30 MDT", "04:00 MDT", "04:30 MDT"]
    assert not any(x.startswith("02:") for x in starts)


def test_denver_fall_back_offers_both_occurrences_of_the_repeated_hour():
    s = sched(weekly={6: [(0, 3 * 60)]})  # Sunday 00:00-03:00 on the night 02:00 becomes 01:00
    assert starts_on(s, date(2026, 11, 1)) == [
        "00:00 MDT", "00:30 MDT", "01:00 MDT", "01:30 MDT", "01:00 MST", "01:30 MST", "02:00 MST", "02:30 MST"]


def test_nonexistent_window_bounds_mean_the_moment_the_clock_jumps():
    z = DENVER
    day = date(2026, 3, 8)
    jump = datetime(2026, 3, 8, 9, 0, tzinfo=UTC)  # 02:00 MST == 03:00 MDT
    assert local_instant(day, 2 * 60 + 30, z) == jump
    assert local_instant(day, 2 * 60 + 30, z, edge="end") == jump
    s = sched(weekly={6: [(2 * 60 + 30, 4 * 60)]})
    assert starts_on(s, day) == ["03:00 MDT", "03:30 MDT"]
    s = sched(weekly={6: [(1 * 60, 2 * 60 + 30)]})
    assert starts_on(s, day) == ["01:00 MST", "01:30 MST"]  # ends at the jump: 1 real hour


def test_ambiguous_window_bounds_start_at_first_and_end_at_last_occurrence():
    z = DENVER
    day = date(2026, 11, 1)
    assert local_instant(day, 90, z) == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)  # 01:30 MDT
    assert local_instant(day, 90, z, edge="end") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 MST
    s = sched(weekly={6: [(60, 90)]})  # 01:00-01:30, an hour that happens twice
    assert starts_on(s, day) == ["01:00 MDT", "01:30 MDT", "01:00 MST"]


def test_berlin_spring_and_autumn_changes():
    s = sched(tz="Europe/Berlin", weekly={6: [(60, 4 * 60)]})  # Sunday 01:00-04:00
    assert starts_on(s, date(2026, 3, 29)) == ["01:00 CET", "01:30 CET", "03:00 CEST", "03:30 CEST"]
    assert starts_on(s, date(2026, 10, 25)) == [
        "01:00 CEST", "01:30 CEST", "02:00 CEST", "02:30 CEST", "02:00 CET", "02:30 CET", "03:00 CET", "03:30 CET"]
    office = sched(tz="Europe/Berlin", weekly={d: [(9 * 60, 9 * 60 + 30)] for d in range(7)})
    before = free_starts(office, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC),
                         datetime(2026, 1, 1, tzinfo=UTC))
    assert [t.strftime("%d %H:%M") for t in before] == ["28 08:00", "29 07:00", "30 07:00"]


@pytest.mark.parametrize("visitor, expected", [
    # Facilitator in Denver, Monday 2026-06-01 09:00-10:00 MDT (15:00-16:00 UTC)
    ("Asia/Kolkata", ["20:30 IST", "21:00 IST"]),
    ("Australia/Adelaide", ["00:30 ACST", "01:00 ACST"]),  # Tuesday there
])
def test_half_hour_offset_visitors_see_converted_times(visitor, expected):
    s = sched(weekly={0: [(9 * 60, 10 * 60)]})
    z = ZoneInfo(visitor)
    visitor_day = datetime(2026, 6, 1, 15, 0, tzinfo=UTC).astimezone(z).date()
    assert starts_on(s, visitor_day, tz=visitor) == expected


def test_adelaide_visitor_across_their_change():
    # Adelaide leaves DST at 03:00 on Sunday 2026-04-05 (ACDT +10:30 -> ACST +9:30); Denver stays on MDT.
    s = sched(weekly={d: [(16 * 60, 17 * 60)] for d in range(7)})  # 16:00-17:00 Denver = 22:00-23:00 UTC
    assert starts_on(s, date(2026, 4, 4), tz="Australia/Adelaide") == ["08:30 ACDT", "09:00 ACDT"]
    assert starts_on(s, date(2026, 4, 5), tz="Australia/Adelaide") == ["07:30 ACST", "08:00 ACST"]
    assert starts_on(s, date(2026, 4, 6), tz="Australia/Adelaide") == ["07:30 ACST", "08:00 ACST"]
