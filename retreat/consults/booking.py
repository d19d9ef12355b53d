"""Free 1:1 consultations: availability, the one slot service, booking, manage links, outcomes.

Every page and API route asks ``free_slots`` for free times, and ``book``/``reschedule``
re-check the chosen time with the same code while holding the facilitator's settings row lock
(on PostgreSQL ``SELECT ... FOR UPDATE``, or for a booking the ``UPDATE`` that also bumps the slot
cache's version; SQLite serialises writers with ``BEGIN IMMEDIATE``).
The database has the last word: an exclusion constraint on PostgreSQL refuses overlapping
blocked ranges, and the loser of a race gets ``SlotUnavailable`` (409), never a 500.

Messages (confirmation with an .ics invite, reminders 24 h and 1 h before, facilitator notices)
are outbox rows written in the same transaction as the booking change.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import uuid
from collections import Counter, OrderedDict, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
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
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import Role, User
from retreat.consults import availability
from retreat.consults.availability import DayOverride, Schedule
from retreat.consults.models import (
    NO_OVERLAP_CONSTRAINT,
    AvailabilityOverride,
    AvailabilityRule,
    Consultation,
    ConsultSettings,
    ConsultStatus,
    OverrideKind,
    note_slots_bumped,
)
from retreat.core import signals
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field, hash_token
from retreat.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from retreat.database import UTCDateTime
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.messaging.ics import event_spec
from retreat.timeutil import human_time, is_valid_zone, zone

# ------------------------------------------------------------------------------------------
# Constants shared by forms, the API schema and the service
# ------------------------------------------------------------------------------------------

MAX_RANGE_DAYS = 62
MAX_LEN = {"name": 200, "email": 254, "phone": 40, "reason": 2000, "heard_from": 200,
           "recommended_cohort": 200, "outcome_notes": 5000, "video_link": 500, "note": 200}
MANAGE_LINK_VALID_AFTER_CALL = timedelta(days=7)
REMINDERS = (("24h", timedelta(hours=24), "tomorrow"), ("1h", timedelta(hours=1), "in one hour"))

ANSWER_CHOICES = (("no", "No"), ("yes", "Yes"), ("unsure", "Not sure"))
FLAGGING_ANSWERS = frozenset({"yes", "unsure"})
# The pre-screen: the contraindications of the medical-clearance screening, asked in plain words.
# A consult is never refused for an answer; "yes" or "not sure" flags it for the facilitator.
PRESCREEN_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("psychosis", "Are you currently experiencing psychosis or mania, or have you been diagnosed with "
                  "schizophrenia or schizoaffective disorder?"),
    ("suicidality", "Are you having thoughts of ending your life, or have you attempted suicide in the "
                    "past year?"),
    ("ketamine_misuse", "Have you ever had a problem with ketamine use, misuse or dependence?"),
    ("pregnancy", "Are you pregnant, possibly pregnant, or nursing?"),
    ("pressure_conditions", "Have you been told you have glaucoma or increased pressure inside the skull "
                            "(intracranial pressure)?"),
    ("clearance_conditions", "Do you have high blood pressure that is not under control, congestive heart "
                             "failure, COPD, or an overactive thyroid (hyperthyroidism)?"),
)
PRESCREEN_KEYS = tuple(k for k, _ in PRESCREEN_QUESTIONS)
SAFETY_KEY = "suicidality"
HEARD_FROM_CHOICES = (
    "A search engine", "A friend or family member", "My therapist or clinician", "Social media",
    "A podcast, article or book", "Another way",
)

_TIME_RE = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*$")
_PHONE_RE = re.compile(r"^[0-9+()./\- x]{5,40}$")
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class SlotUnavailable(Conflict):
    """The chosen time is not free: ``reason`` is taken | too_soon | unavailable."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class ManageLinkInvalid(NotFound):
    pass


class ManageLinkExpired(DomainError):
    status = 410


class Slot(NamedTuple):
    start: datetime
    end: datetime
    facilitator_id: int


@dataclass(frozen=True)
class Booking:
    consult: Consultation
    manage_token: str
    manage_url: str


# ------------------------------------------------------------------------------------------
# Settings and availability editing
# ------------------------------------------------------------------------------------------


def get_settings(facilitator: User, *, create: bool = False) -> ConsultSettings | None:
    row = db.session.scalar(select(ConsultSettings).where(ConsultSettings.facilitator_id == facilitator.id))
    if row is None and create:
        row = ConsultSettings(facilitator_id=facilitator.id, tz=facilitator.tz if is_valid_zone(facilitator.tz) else "UTC",
                              duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
                              min_notice_minutes=12 * 60, horizon_days=60, slot_interval_minutes=30,
                              change_cutoff_hours=24, accepting_bookings=True)
        db.session.add(row)
        db.session.flush()
    return row


def _require_facilitator(user: User) -> None:
    if user is None or user.role != Role.FACILITATOR:
        raise PermissionDenied("Only facilitators publish consult availability.")


SETTING_RANGES = {
    "duration_minutes": (10, 240, "Consult length"),
    "buffer_before_minutes": (0, 240, "Buffer before"),
    "buffer_after_minutes": (0, 240, "Buffer after"),
    "min_notice_minutes": (0, 43200, "Minimum notice"),
    "horizon_days": (1, 365, "Booking horizon"),
    "slot_interval_minutes": (5, 240, "Start times every"),
    "change_cutoff_hours": (0, 168, "Changes allowed until"),
}


def update_settings(facilitator: User, *, tz: str, duration_minutes: int, buffer_before_minutes: int,
                    buffer_after_minutes: int, min_notice_minutes: int, horizon_days: int,
                    daily_cap: int | None, slot_interval_minutes: int, change_cutoff_hours: int,
                    video_link: str | None, accepting_bookings: bool, actor: User | None = None,
                    ctx: RequestContext | None = None) -> ConsultSettings:
    _require_facilitator(facilitator)
    values = {"duration_minutes": duration_minutes, "buffer_before_minutes": buffer_before_minutes,
              "buffer_after_minutes": buffer_after_minutes, "min_notice_minutes": min_notice_minutes,
              "horizon_days": horizon_days, "slot_interval_minutes": slot_interval_minutes,
              "change_cutoff_hours": change_cutoff_hours}
    errors: dict[str, list[str]] = {}
    if not is_valid_zone(tz):
        errors["tz"] = ["Choose a valid time zone."]
    for key, value in values.items():
        lo, hi, label = SETTING_RANGES[key]
        if not isinstance(value, int) or not lo <= value <= hi:
            errors[key] = [f"{label} must be between {lo} and {hi}."]
    if daily_cap is not None and (not isinstance(daily_cap, int) or not 1 <= daily_cap <= 100):
        errors["daily_cap"] = ["Daily limit must be between 1 and 100, or empty for no limit."]
    video_link = (video_link or "").strip() or None
    if video_link and (len(video_link) > MAX_LEN["video_link"] or not _URL_RE.match(video_link)):
        errors["video_link"] = ["Enter the full video-call address, starting with https://."]
    if errors:
        raise ValidationFailed("Some settings need attention.", errors=errors)
    row = get_settings(facilitator, create=True)
    row.tz = tz
    for key, value in values.items():
        setattr(row, key, value)
    row.daily_cap = daily_cap
    row.video_link = video_link
    row.accepting_bookings = bool(accepting_bookings)
    audit.record("consult.settings_changed", actor=actor or facilitator, object_type="consult_settings",
                 object_id=row.id, ctx=ctx)
    return row


def parse_clock(text: str, *, allow_24: bool = False) -> int:
    """'9', '09:30' -> minutes after midnight; '24:00' only as an end."""
    m = _TIME_RE.match(text or "")
    if not m:
        raise ValueError(text)
    hours, minutes = int(m.group(1)), int(m.group(2) or 0)
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise ValueError(text)
    return hours * 60 + minutes


def parse_windows(text: str) -> list[tuple[int, int]]:
    """'09:00-12:00, 13:00-17:00' -> [(540, 720), (780, 1020)] (merged, sorted). Empty -> []."""
    text = (text or "").strip()
    if not text:
        return []
    windows = []
    for part in re.split(r"[,;]", text):
        part = part.strip()
        if not part:
            continue
        bits = re.split(r"\s*(?:-|–|—|\bto\b)\s*", part)
        if len(bits) != 2:
            raise ValueError(part)
        start, end = parse_clock(bits[0]), parse_clock(bits[1], allow_24=True)
        if end <= start:
            raise ValueError(part)
        windows.append((start, end))
    return availability.merge_windows(windows)


def format_clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_windows(windows) -> str:
    return ", ".join(f"{format_clock(s)}-{format_clock(e)}" for s, e in windows)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def weekly_rules(facilitator: User) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    rows = db.session.scalars(select(AvailabilityRule).where(AvailabilityRule.facilitator_id == facilitator.id)
                              .order_by(AvailabilityRule.weekday, AvailabilityRule.start_minute))
    for r in rows:
        out[r.weekday].append((r.start_minute, r.end_minute))
    return dict(out)


def set_weekly_rules(facilitator: User, texts: dict[int, str], *, actor: User | None = None,
                     ctx: RequestContext | None = None) -> dict[int, list[tuple[int, int]]]:
    """Replace the weekly windows. ``texts`` maps weekday (0 = Monday) to '09:00-12:00, 13:00-17:00'."""
    _require_facilitator(facilitator)
    parsed: dict[int, list[tuple[int, int]]] = {}
    errors: dict[str, list[str]] = {}
    for weekday in range(7):
        text = texts.get(weekday, "") or ""
        if len(text) > 300:
            errors[f"day_{weekday}"] = ["That is too long: list a few windows like 09:00-12:00, 13:00-17:00."]
            continue
        try:
            parsed[weekday] = parse_windows(text)
        except ValueError:
            errors[f"day_{weekday}"] = [f"{WEEKDAYS[weekday]}: write hours like 09:00-12:00, 13:00-17:00 "
                                        "(24-hour clock), or leave it empty."]
    if errors:
        raise ValidationFailed("Some days need attention.", errors=errors)
    get_settings(facilitator, create=True)
    for row in db.session.scalars(select(AvailabilityRule).where(AvailabilityRule.facilitator_id == facilitator.id)):
        db.session.delete(row)
    db.session.flush()
    for weekday, windows in parsed.items():
        for s, e in windows:
            db.session.add(AvailabilityRule(facilitator_id=facilitator.id, weekday=weekday, start_minute=s, end_minute=e))
    db.session.flush()
    audit.record("consult.availability_changed", actor=actor or facilitator, object_type="user",
                 object_id=facilitator.id, details={"weekly": {WEEKDAYS[d]: format_windows(w) for d, w in parsed.items() if w}},
                 ctx=ctx)
    return parsed


def add_override(facilitator: User, *, day: date | None, kind: str, start: str | None = None,
                 end: str | None = None, note: str | None = None, now: datetime, actor: User | None = None,
                 ctx: RequestContext | None = None) -> AvailabilityOverride:
    _require_facilitator(facilitator)
    settings = get_settings(facilitator, create=True)
    errors: dict[str, list[str]] = {}
    try:
        kind = OverrideKind(kind)
    except ValueError:
        errors["kind"] = ["Choose what changes on that day."]
    today = now.astimezone(zone(settings.tz)).date()
    if day is None:
        errors["day"] = ["Enter the date."]
    elif day < today:
        errors["day"] = ["That date has passed."]
    elif day > today + timedelta(days=400):
        errors["day"] = ["Choose a date within the next year."]
    s = e = None
    if "kind" not in errors and kind != OverrideKind.OFF:
        try:
            s, e = parse_clock(start or ""), parse_clock(end or "", allow_24=True)
            if e <= s:
                errors["end"] = ["The end must be after the start."]
        except ValueError:
            errors["start"] = ["Enter the hours like 09:00 and 12:00 (24-hour clock)."]
    note = (note or "").strip() or None
    if note and len(note) > MAX_LEN["note"]:
        errors["note"] = [f"Keep the note under {MAX_LEN['note']} characters."]
    if errors:
        raise ValidationFailed("The date change needs attention.", errors=errors)
    row = AvailabilityOverride(facilitator_id=facilitator.id, day=day, kind=kind.value, start_minute=s,
                               end_minute=e, note=note)
    db.session.add(row)
    db.session.flush()
    audit.record("consult.override_added", actor=actor or facilitator, object_type="availability_override",
                 object_id=row.id, details={"day": day.isoformat(), "kind": kind.value}, ctx=ctx)
    return row


def delete_override(facilitator: User, override_id: int, *, actor: User | None = None,
                    ctx: RequestContext | None = None) -> None:
    row = db.session.get(AvailabilityOverride, override_id)
    if row is None or row.facilitator_id != facilitator.id:
        raise NotFound("No such date change.")
    db.session.delete(row)
    audit.record("consult.override_deleted", actor=actor or facilitator, object_type="availability_override",
                 object_id=override_id, ctx=ctx)


def upcoming_overrides(facilitator: User, now: datetime) -> list[AvailabilityOverride]:
    settings = get_settings(facilitator)
    today = now.astimezone(zone(settings.tz if settings else facilitator.tz)).date()
    return list(db.session.scalars(
        select(AvailabilityOverride)
        .where(AvailabilityOverride.facilitator_id == facilitator.id, AvailabilityOverride.day >= today)
        .order_by(AvailabilityOverride.day, AvailabilityOverride.start_minute)
    ))


# ------------------------------------------------------------------------------------------
# The slot service
# ------------------------------------------------------------------------------------------


def _active():
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
            .where(c.facilitator_id.in_(ids), _active(), c.blocked_end > bindparam("lo_at"),
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

_SLOT_CACHE: OrderedDict = OrderedDict()
_SLOT_CACHE_LOCK = threading.Lock()
SLOT_CACHE_SIZE = 512


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


def cached_slots(key: tuple, now: datetime, compute):
    """``compute()`` once per ``key`` and minute. The minute bounds how stale a list can be with
    respect to minimum notice (at most 60 s); a booking re-checks its time under the facilitator's
    lock and the database constraint, so a stale slot can only ever be refused, never double-booked."""
    full_key = (key, now.replace(second=0, microsecond=0))
    with _SLOT_CACHE_LOCK:
        hit = _SLOT_CACHE.get(full_key)
        if hit is not None:
            _SLOT_CACHE.move_to_end(full_key)
            return hit
    value = compute()
    with _SLOT_CACHE_LOCK:
        _SLOT_CACHE[full_key] = value
        while len(_SLOT_CACHE) > SLOT_CACHE_SIZE:
            _SLOT_CACHE.popitem(last=False)
    return value


def clear_slot_cache() -> None:
    with _SLOT_CACHE_LOCK:
        _SLOT_CACHE.clear()


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


def _why_not_free(schedule: Schedule, start: datetime, now: datetime) -> SlotUnavailable:
    if start < now + schedule.min_notice:
        hours = int(schedule.min_notice.total_seconds() // 3600)
        return SlotUnavailable(f"That time is too soon: please book at least {hours} hours ahead.", reason="too_soon")
    open_schedule = replace(schedule, busy=[], booked_per_day={})
    if start in availability.free_starts(open_schedule, start, start + timedelta(microseconds=1), now):
        return SlotUnavailable("Sorry, that time was just taken.", reason="taken")
    return SlotUnavailable("That time is not available for booking.", reason="unavailable")


def _is_free(schedule: Schedule, start: datetime, now: datetime) -> bool:
    return start in availability.free_starts(schedule, start, start + timedelta(microseconds=1), now)


# ------------------------------------------------------------------------------------------
# Guests, answers, encryption
# ------------------------------------------------------------------------------------------


def validate_guest(*, name, email, phone, tz, reason, heard_from, answers) -> dict:
    """All guest-field checks in one place (forms and API); raises one ValidationFailed with every error."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = ["Enter your name."]
    elif len(name) > MAX_LEN["name"]:
        errors["name"] = [f"Keep your name under {MAX_LEN['name']} characters."]
    try:
        email = accounts.validate_email(email if isinstance(email, str) else "")
    except ValidationFailed:
        errors["email"] = ["Enter a valid email address, like name@example.com."]
    phone = (phone or "").strip() if isinstance(phone, str) else None
    if phone and (len(phone) > MAX_LEN["phone"] or not _PHONE_RE.match(phone)):
        errors["phone"] = ["Enter a phone number with digits (and + ( ) - if you like), or leave it empty."]
    if not is_valid_zone(tz if isinstance(tz, str) else None):
        errors["timezone"] = ["Choose a valid time zone, such as America/Denver."]
    reason = (reason or "").strip() if isinstance(reason, str) else None
    if reason and len(reason) > MAX_LEN["reason"]:
        errors["reason"] = [f"Keep this under {MAX_LEN['reason']} characters."]
    heard_from = (heard_from or "").strip() if isinstance(heard_from, str) else None
    if heard_from and len(heard_from) > MAX_LEN["heard_from"]:
        errors["heard_from"] = [f"Keep this under {MAX_LEN['heard_from']} characters."]
    clean_answers: dict[str, str] = {}
    if answers is not None and not isinstance(answers, dict):
        errors["answers"] = ["Answers must be an object of question: answer."]
    else:
        valid = {k for k, _ in ANSWER_CHOICES}
        for key, value in (answers or {}).items():
            if key not in PRESCREEN_KEYS:
                errors.setdefault("answers", []).append(
                    f"Unknown question {str(key)[:40]!r}; the questions are: {', '.join(PRESCREEN_KEYS)}.")
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            if value in (None, ""):
                continue
            if value not in valid:
                errors.setdefault("answers", []).append(f"Answer {key!r} with yes, no or unsure.")
                continue
            clean_answers[key] = value
    if errors:
        raise ValidationFailed("Some details need attention.", errors=errors)
    return {"name": name, "email": email, "phone": phone or None, "tz": tz, "reason": reason or None,
            "heard_from": heard_from or None, "answers": clean_answers}


def flags_for(answers: dict[str, str]) -> list[str]:
    """The pre-screen keys that need the facilitator's review (never a reason to refuse)."""
    return [k for k in PRESCREEN_KEYS if answers.get(k) in FLAGGING_ANSWERS]


def safety_signal(answers: dict[str, str]) -> bool:
    """Suicidal ideation or self-harm reported (or not ruled out) on the pre-screen."""
    return answers.get(SAFETY_KEY) in FLAGGING_ANSWERS


def consult_answers(consult: Consultation) -> dict[str, str]:
    raw = decrypt_field(consult.answers_encrypted)
    return json.loads(raw) if raw else {}


def consult_reason(consult: Consultation) -> str | None:
    return decrypt_field(consult.reason_encrypted)


def consult_outcome_notes(consult: Consultation) -> str | None:
    return decrypt_field(consult.outcome_notes_encrypted)


def answered_questions(consult: Consultation) -> list[tuple[str, str, bool]]:
    """(question, answer label, needs review) for display to the facilitator."""
    answers = consult_answers(consult)
    labels = dict(ANSWER_CHOICES)
    return [(q, labels.get(answers[k], "Not answered") if k in answers else "Not answered",
             answers.get(k) in FLAGGING_ANSWERS) for k, q in PRESCREEN_QUESTIONS]


# ------------------------------------------------------------------------------------------
# Manage tokens
# ------------------------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="consult-manage")


def issue_manage_token(consult: Consultation) -> str:
    """A signed token naming the consult (by its calendar UID, known before the row is written) and its
    expiry; only its SHA-256 is stored. Replaces the previous one."""
    expires = consult.end_at + MANAGE_LINK_VALID_AFTER_CALL
    raw = _serializer().dumps({"u": consult.calendar_uid, "n": secrets.token_urlsafe(12), "e": int(expires.timestamp())})
    consult.manage_token_hash = hash_token(raw)
    consult.manage_token_expires_at = expires
    return raw


def manage_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/consult/manage/{token}"


def consult_for_token(token: str, now: datetime, *, lock: bool = False) -> Consultation:
    invalid = ManageLinkInvalid("This link is not valid. Check that you copied the whole link from your email.")
    if not token or len(token) > 500:
        raise invalid
    try:
        data = _serializer().loads(token)
    except BadSignature:
        raise invalid from None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        raise invalid
    if isinstance(data.get("u"), str):
        stmt = select(Consultation).where(Consultation.calendar_uid == data["u"])
    elif isinstance(data.get("c"), int):  # links issued before tokens named the calendar UID
        stmt = select(Consultation).where(Consultation.id == data["c"])
    else:
        raise invalid
    if now.timestamp() >= data["e"]:
        raise ManageLinkExpired("This link has expired. If you would like to talk with us, book a new consultation.")
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    consult = db.session.scalar(stmt)
    if consult is None:
        raise invalid
    if not hmac.compare_digest(consult.manage_token_hash or "", hash_token(token)):
        raise ManageLinkInvalid("This link has been replaced by a newer one. Please use the link in the most "
                                "recent email we sent you.")
    return consult


def change_deadline(consult: Consultation, settings: ConsultSettings | None = None) -> datetime:
    settings = settings or consult.settings
    hours = settings.change_cutoff_hours if settings else 24
    return consult.start_at - timedelta(hours=hours)


def can_change(consult: Consultation, now: datetime) -> bool:
    return consult.status == ConsultStatus.BOOKED.value and now < change_deadline(consult)


# ------------------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------------------


def ics_for(consult: Consultation, *, method: str = "REQUEST", manage_link: str | None = None) -> dict:
    settings = consult.settings
    video = settings.video_link if settings else None
    practice = current_app.config.get("PRACTICE_NAME", "retreat")
    lines = [f"Free consultation with {consult.facilitator.name} ({practice})."]
    if video:
        lines.append(f"Join the video call: {video}")
    if manage_link:
        lines.append(f"Reschedule or cancel: {manage_link}")
    return event_spec(
        uid=consult.calendar_uid, start=consult.start_at, end=consult.end_at, sequence=consult.sequence,
        method=method, summary=f"Free consultation with {consult.facilitator.name}",
        description="\n".join(lines), location=video or "", url=video or "",
        organizer_email=consult.facilitator.email, organizer_name=consult.facilitator.name,
        attendee_email=consult.guest_email, attendee_name=consult.guest_name,
    )


def _guest_group(consult: Consultation) -> str:
    return f"consult:{consult.id}"


def _context(consult: Consultation, *, tz: str, manage_link: str | None, base_url: str, event: str) -> dict:
    settings = consult.settings
    return {
        "consult_id": consult.id, "event": event, "guest_name": consult.guest_name,
        "facilitator_name": consult.facilitator.name, "when": human_time(consult.start_at, tz), "tz": tz,
        "start": consult.start_at.isoformat(), "end": consult.end_at.isoformat(),
        "duration_minutes": int((consult.end_at - consult.start_at).total_seconds() // 60),
        "video_link": settings.video_link if settings else None, "manage_url": manage_link,
        "change_until": human_time(change_deadline(consult, settings), tz),
        "book_url": f"{base_url.rstrip('/')}/consult/",
    }


def _queue_guest_messages(consult: Consultation, link: str, *, now: datetime, base_url: str, event: str) -> None:
    """Confirmation (booked or rescheduled) with the invite, then the reminders still ahead."""
    ctx = _context(consult, tz=consult.guest_tz, manage_link=link, base_url=base_url, event=event)
    common = dict(to_user=consult.participant, to_email=consult.guest_email, to_name=consult.guest_name,
                  tz=consult.guest_tz, group_key=_guest_group(consult), now=now)
    prefix = f"consult-{consult.id}-s{consult.sequence}"
    outbox.enqueue(template="consult_confirmation", dedupe_key=f"{prefix}-confirmation", context=ctx,
                   ics=ics_for(consult, manage_link=link), **common)
    for label, before, lead in REMINDERS:
        due = consult.start_at - before
        if due > now:
            outbox.enqueue(template="consult_reminder", dedupe_key=f"{prefix}-reminder-{label}", due_at=due,
                           context={**ctx, "lead": lead}, **common)


def _queue_facilitator_notice(consult: Consultation, *, now: datetime, base_url: str, event: str,
                              previous_when: str | None = None) -> None:
    settings = consult.settings
    tz = settings.tz if settings else consult.facilitator.tz
    ctx = _context(consult, tz=tz, manage_link=None, base_url=base_url, event=event)
    ctx.update(previous_when=previous_when, guest_email=consult.guest_email,
               portal_url=f"{base_url.rstrip('/')}/facilitator/consults/{consult.id}")
    outbox.enqueue(template="consult_facilitator_notice", to_user=consult.facilitator, tz=tz,
                   dedupe_key=f"consult-{consult.id}-s{consult.sequence}-facilitator-{event}", context=ctx,
                   group_key=f"consult:{consult.id}:facilitator",
                   ics=ics_for(consult, method="CANCEL" if event == "cancelled" else "REQUEST"), now=now)


# ------------------------------------------------------------------------------------------
# Booking, rescheduling, cancelling
# ------------------------------------------------------------------------------------------


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
    """Lock the facilitator's settings row, then load their schedule around ``at`` (fresh, under the lock)."""
    settings = db.session.scalar(
        select(ConsultSettings).where(ConsultSettings.facilitator_id == facilitator_id)
        .with_for_update().execution_options(populate_existing=True)
    )
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
         base_url: str, now: datetime, ctx: RequestContext | None = None, via: str = "web") -> Booking:
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
            reasons = [_why_not_free(s, start, now) for s in schedules]
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
                                  now=now, ctx=ctx, via=via)
        except _NotFree as nf:
            last_reason = nf.why
        except IntegrityError as exc:
            if not _is_overlap_violation(exc):
                raise
            last_reason = SlotUnavailable("Sorry, that time was just taken.", reason="taken")
    raise last_reason or SlotUnavailable("Sorry, that time was just taken.", reason="taken")


def _book_with(fid: int, start: datetime, guest: dict, *, check: bool, base_url: str, now: datetime,
               ctx: RequestContext | None, via: str) -> Booking:
    """One candidate of ``book``: raises _NotFree (or IntegrityError from the exclusion constraint)."""
    settings, fac = _lock_facilitator(fid)
    if check:
        _check_facilitator(fid, settings, fac)
    schedule = _schedule_around(settings, start)
    if schedule is None:
        raise _NotFree(SlotUnavailable("That facilitator is not taking bookings.", reason="unavailable"))
    if not _is_free(schedule, start, now):
        raise _NotFree(_why_not_free(schedule, start, now))
    participant, _ = accounts.guest_account(email=guest["email"], name=guest["name"], tz=guest["tz"], ctx=ctx, now=now)
    consult = Consultation(
        calendar_uid=f"consult-{uuid.uuid4()}@retreat", facilitator_id=fid,
        participant_id=participant.id, start_at=start, end_at=start + schedule.duration,
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
    db.session.add(consult)
    db.session.flush()  # the exclusion constraint speaks here on PostgreSQL
    # What the messages below read of the consult, already in hand (not loaded again).
    set_committed_value(consult, "settings", settings)
    set_committed_value(consult, "participant", participant)
    set_committed_value(consult, "facilitator", fac)
    link = manage_url(base_url, token)
    if safety_signal(guest["answers"]):
        signals.consult_flagged.send(consult, now=now)  # a safety alert (retreat.clinical)
    with outbox.batched():
        _queue_guest_messages(consult, link, now=now, base_url=base_url, event="booked")
        _queue_facilitator_notice(consult, now=now, base_url=base_url, event="booked")
    audit.record("consult.booked", actor_email=guest["email"], object_type="consultation", object_id=consult.id,
                 details={"facilitator_id": fid, "start": start.isoformat(), "via": via}, ctx=ctx, now=now)
    return Booking(consult, token, link)


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
    previous_when = None
    try:
        with db.session.begin_nested():
            schedule = _lock_schedule(consult.facilitator_id, new_start, exclude_consult_id=consult.id)
            if schedule is None:
                raise SlotUnavailable("Your facilitator is not taking bookings at the moment.", reason="unavailable")
            if not _is_free(schedule, new_start, now):
                raise _why_not_free(schedule, new_start, now)
            settings = consult.settings
            previous_when = human_time(consult.start_at, settings.tz)
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
    outbox.cancel(group_key=_guest_group(consult), now=now)
    token = issue_manage_token(consult)
    link = manage_url(base_url, token)
    _queue_guest_messages(consult, link, now=now, base_url=base_url, event="rescheduled")
    _queue_facilitator_notice(consult, now=now, base_url=base_url, event="rescheduled", previous_when=previous_when)
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
    outbox.cancel(group_key=_guest_group(consult), now=now)
    ctx_guest = _context(consult, tz=consult.guest_tz, manage_link=None, base_url=base_url, event="cancelled")
    ctx_guest["cancelled_by"] = by
    outbox.enqueue(template="consult_cancelled", to_user=consult.participant, to_email=consult.guest_email,
                   to_name=consult.guest_name, tz=consult.guest_tz,
                   dedupe_key=f"consult-{consult.id}-s{consult.sequence}-cancelled", context=ctx_guest,
                   ics=ics_for(consult, method="CANCEL"), now=now)
    _queue_facilitator_notice(consult, now=now, base_url=base_url, event="cancelled")
    audit.record("consult.cancelled", actor=actor, actor_email=None if actor else consult.guest_email,
                 object_type="consultation", object_id=consult.id, details={"by": by}, ctx=ctx, now=now)
    return consult


# ------------------------------------------------------------------------------------------
# Facilitator portal
# ------------------------------------------------------------------------------------------

OUTCOMES = ((ConsultStatus.COMPLETED.value, "Completed"), (ConsultStatus.NO_SHOW.value, "No-show"))


def get_for_facilitator(facilitator: User, consult_id: int, *, lock: bool = False) -> Consultation:
    """The facilitator's own consult (row-locked for changes), else NotFound."""
    consult = db.session.get(Consultation, consult_id, with_for_update=lock, populate_existing=lock)
    if consult is None or consult.facilitator_id != facilitator.id:
        raise NotFound("No such consultation.")
    return consult


def facilitator_consults(facilitator: User, now: datetime, *, past_limit: int = 100) -> dict[str, list[Consultation]]:
    """Upcoming and past consults, flagged ones first in each; cancelled ones listed apart."""
    base = select(Consultation).where(Consultation.facilitator_id == facilitator.id)
    upcoming = list(db.session.scalars(
        base.where(Consultation.status == ConsultStatus.BOOKED.value, Consultation.end_at > now)
        .order_by(Consultation.flagged.desc(), Consultation.start_at)))
    past = list(db.session.scalars(
        base.where(_active(), Consultation.end_at <= now)
        .order_by(Consultation.flagged.desc(), Consultation.start_at.desc()).limit(past_limit)))
    cancelled = list(db.session.scalars(
        base.where(Consultation.status == ConsultStatus.CANCELLED.value, Consultation.start_at > now - timedelta(days=30))
        .order_by(Consultation.start_at).limit(past_limit)))
    return {"upcoming": upcoming, "past": past, "cancelled": cancelled}


def record_outcome(consult: Consultation, *, facilitator: User, outcome: str, recommended_cohort: str | None,
                   notes: str | None, now: datetime, ctx: RequestContext | None = None) -> Consultation:
    if consult.facilitator_id != facilitator.id:
        raise PermissionDenied("Only the consult's facilitator records its outcome.")
    if consult.status == ConsultStatus.CANCELLED.value:
        raise Conflict("This consultation was cancelled.")
    if consult.start_at > now:
        raise Conflict("You can record the outcome once the call has started.")
    errors: dict[str, list[str]] = {}
    if outcome not in dict(OUTCOMES):
        errors["outcome"] = ["Choose completed or no-show."]
    recommended_cohort = (recommended_cohort or "").strip() or None
    if recommended_cohort and len(recommended_cohort) > MAX_LEN["recommended_cohort"]:
        errors["recommended_cohort"] = [f"Keep this under {MAX_LEN['recommended_cohort']} characters."]
    notes = (notes or "").strip() or None
    if notes and len(notes) > MAX_LEN["outcome_notes"]:
        errors["notes"] = [f"Keep the notes under {MAX_LEN['outcome_notes']} characters."]
    if errors:
        raise ValidationFailed("The outcome needs attention.", errors=errors)
    consult.status = outcome
    consult.recommended_cohort = recommended_cohort if outcome == ConsultStatus.COMPLETED.value else None
    consult.outcome_notes_encrypted = encrypt_field(notes) if notes else None
    consult.outcome_recorded_at = now
    consult.outcome_recorded_by_id = facilitator.id
    consult.updated_at = now
    audit.record("consult.outcome_recorded", actor=facilitator, object_type="consultation", object_id=consult.id,
                 details={"outcome": outcome}, ctx=ctx, now=now)
    return consult


def consults_for_participant(user: User) -> list[Consultation]:
    """A person's consult history (for the cohort application and the facilitator's view)."""
    return list(db.session.scalars(
        select(Consultation).where(Consultation.participant_id == user.id).order_by(Consultation.start_at.desc())))


@dataclass
class PreviewDay:
    day: date
    windows: list[tuple[int, int]]
    off: bool
    notes: list[str]
    consults: list[Consultation]
    free: list[datetime]


def week_preview(facilitator: User, week_start: date, now: datetime) -> list[PreviewDay]:
    """Seven local days from ``week_start``: open hours after overrides, booked consults, bookable start times."""
    settings = get_settings(facilitator, create=False)
    tz = settings.tz if settings else (facilitator.tz or "UTC")
    z = zone(tz)
    lo = availability.local_instant(week_start, 0, z)
    hi = availability.local_instant(week_start + timedelta(days=7), 0, z)
    schedules = load_schedules(lo, hi, settings_rows=[settings]) if settings else []
    schedule = schedules[0] if schedules else Schedule(facilitator.id, tz)
    free = availability.free_starts(schedule, lo, hi, now) if settings and settings.accepting_bookings else []
    consults = list(db.session.scalars(
        select(Consultation).where(Consultation.facilitator_id == facilitator.id, _active(),
                                   Consultation.start_at >= lo, Consultation.start_at < hi)
        .order_by(Consultation.start_at)))
    overrides = defaultdict(list)
    for o in db.session.scalars(select(AvailabilityOverride).where(
            AvailabilityOverride.facilitator_id == facilitator.id,
            AvailabilityOverride.day.between(week_start, week_start + timedelta(days=6)))):
        overrides[o.day].append(o)
    days = []
    for i in range(7):
        d = week_start + timedelta(days=i)
        notes = []
        for o in overrides[d]:
            label = {"off": "Day off", "blocked": "Blocked", "extra": "Extra hours"}[o.kind]
            if o.kind != OverrideKind.OFF.value:
                label += f" {format_clock(o.start_minute)}-{format_clock(o.end_minute)}"
            notes.append(label + (f" ({o.note})" if o.note else ""))
        days.append(PreviewDay(
            day=d, windows=availability.day_windows(schedule, d),
            off=any(o.kind == OverrideKind.OFF.value for o in overrides[d]), notes=notes,
            consults=[c for c in consults if c.start_at.astimezone(z).date() == d],
            free=[t for t in free if t.astimezone(z).date() == d]))
    return days


def local_day_start(day: date, tz: str) -> datetime:
    return availability.local_instant(day, 0, zone(tz))


def parse_local_date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def time_label(value: datetime, tz: str) -> str:
    local = value.astimezone(zone(tz))
    return local.strftime("%I:%M %p").lstrip("0")

