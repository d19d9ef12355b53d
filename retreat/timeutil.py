"""One clock and the time-zone helpers. Store UTC; convert only at the edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_ZONES: frozenset[str] | None = None


# The one bound of every date and time people type (forms, JSON): far enough for any booking,
# near enough that converting between zones never overflows (9999-12-31 in a western zone does).
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


# The practice's home zone until an admin chooses one (``accounts.practice``; the fallback of models).
DEFAULT_PRACTICE_ZONE = "America/Denver"


def in_calendar(value: date | datetime) -> bool:
    """Whether a typed date or time falls within EARLIEST_YEAR..LATEST_YEAR."""
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


def now_utc() -> datetime:
    """The current instant, timezone-aware UTC. The only place the app reads the clock."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: attach a time zone before storing")
    return value.astimezone(UTC)


def all_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def is_valid_zone(name: str | None) -> bool:
    if not name or name not in all_zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name) if is_valid_zone(name) else ZoneInfo("UTC")


def cached_zone(name: str) -> ZoneInfo:
    """A valid zone, cached (ZoneInfo keeps only a few strongly; the slot engine asks for many)."""
    return _cached_zone(name)


@lru_cache(maxsize=1024)
def _cached_zone(name: str) -> ZoneInfo:
    return zone(name)


def local_date(value: datetime, tz_name: str | None) -> date:
    """The calendar date of ``value`` where ``tz_name`` is (an unknown zone counts as UTC)."""
    return to_local(value, tz_name).date()


def human_date(value: date | datetime, tz: str | None = None) -> str:
    """"Tuesday 3 March 2026": a day as people read it. A moment is taken to its date in ``tz``; a
    calendar date (a due date, a cohort's day) is already a day and is written as it is."""
    day = to_local(value, tz).date() if isinstance(value, datetime) else value
    return f"{day:%A} {day.day} {day:%B %Y}"


def human_time(value: datetime, tz: str | None) -> str:
    """"Tuesday 3 March 2026, 5:00 PM MST": a moment as people read it in emails, in ``tz``."""
    local = to_local(value, tz)
    return f"{human_date(local.date())}, {local.strftime('%I:%M %p').lstrip('0')} {local.tzname()}"


def email_time(value: datetime, tz: str | None) -> str:
    """"Tuesday 12 January 2027, 17:00 (Europe/Berlin)": a moment in an email, in the recipient's
    zone, 24-hour (read the same in every country) and naming the zone it is in."""
    name = tz if is_valid_zone(tz) else "UTC"
    local = to_local(value, name)
    return f"{human_date(local.date())}, {local:%H:%M} ({name})"


def venue_time(value: datetime, venue_tz: str | None, viewer_tz: str | None) -> str:
    """An in-person session's moment in an email: the venue's time first, the reader's beside it
    when their zone differs: "Monday 11 January 2027, 09:00 MST venue time (America/Denver) —
    17:00 CET your time (Europe/Berlin)" (the reader's day is named when it is another day).
    Without a known venue zone it is the reader's time alone (``email_time``)."""
    if not is_valid_zone(venue_tz):
        return email_time(value, viewer_tz)
    venue = to_local(value, venue_tz)
    text = f"{human_date(venue.date())}, {venue:%H:%M} {venue.tzname()} venue time ({venue_tz})"
    mine_tz = viewer_tz if is_valid_zone(viewer_tz) else "UTC"
    mine = to_local(value, mine_tz)
    if mine_tz == venue_tz or (mine.utcoffset() == venue.utcoffset() and mine.tzname() == venue.tzname()):
        return text
    day = "" if mine.date() == venue.date() else f"{human_date(mine.date())}, "
    return f"{text} — {day}{mine:%H:%M} {mine.tzname()} your time ({mine_tz})"


def to_local(value: datetime, tz_name: str | None) -> datetime:
    return ensure_utc(value).astimezone(zone(tz_name))


def format_local(value: datetime | None, tz_name: str | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    if value is None:
        return ""
    local = to_local(value, tz_name)
    return f"{local.strftime(fmt)} {local.tzname()}"


_LEGACY_PREFIXES = ("Etc/", "US/", "SystemV/", "posix/", "right/")
_AREAS = ("Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/",
          "Pacific/")


@lru_cache(maxsize=1)
def zone_links() -> dict[str, str]:
    """Alias -> canonical name, from the tz database's own link lines ("L Asia/Kolkata Asia/Calcutta")."""
    text = ""
    try:
        from importlib.resources import files

        text = files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text()
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        try:
            with open("/usr/share/zoneinfo/tzdata.zi", encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = ""
    links: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return links


def canonical_zone(name: str | None) -> str | None:
    """The canonical IANA name for ``name`` (an alias such as Asia/Calcutta or US/Mountain maps to
    Asia/Kolkata or America/Denver); None when it is no zone at all."""
    if not isinstance(name, str) or not is_valid_zone(name.strip()):
        return None
    name = name.strip()
    if name in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return "UTC"
    seen = 0
    links = zone_links()
    while name in links and seen < 5:  # a link names its target directly; the bound guards a bad file
        name, seen = links[name], seen + 1
    return name


@lru_cache(maxsize=1)
def common_zones() -> list[str]:
    """Zones offered in pickers: canonical Area/City names only (no aliases, no US/* or Etc/*), sorted."""
    links = zone_links()
    return sorted(z for z in all_zones()
                  if z.startswith(_AREAS) and z not in links and not z.startswith(_LEGACY_PREFIXES)) + ["UTC"]


def utc_offset_label(name: str, at: datetime) -> str:
    """"UTC+05:30": the zone's offset from UTC at ``at``."""
    offset = ensure_utc(at).astimezone(zone(name)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_label(name: str, at: datetime) -> str:
    """"Europe / Berlin (UTC+01:00)": a zone as a person reads it in a list."""
    return f"{name.replace('_', ' ').replace('/', ' / ')} ({utc_offset_label(name, at)})"


def day_window(now: datetime, tz_name: str | None) -> tuple[datetime, datetime]:
    """The local calendar day (in ``tz_name``) that contains ``now``, as [start, end) in UTC; a DST
    day is 23 or 25 hours long."""
    tz = zone(tz_name)
    day = ensure_utc(now).astimezone(tz).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
