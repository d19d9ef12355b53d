"""What a facilitator publishes: consult settings, weekly hours and date changes, and a preview
of the week they make. The limits and defaults of the settings are ``retreat.consults.settings``."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    select,
)

from retreat import audit
from retreat.accounts import practice
from retreat.accounts.models import Role, User
from retreat.consults import availability
from retreat.consults.availability import Schedule
from retreat.consults.models import (
    AvailabilityOverride,
    AvailabilityRule,
    Consultation,
    ConsultSettings,
    OverrideKind,
)
from retreat.consults.settings import MAX_LEN, check_ranges, defaults
from retreat.consults.slots import holds_time, load_schedules
from retreat.core.context import RequestContext
from retreat.core.errors import NotFound, PermissionDenied, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import is_valid_zone, zone

_TIME_RE = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*$")
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def get_settings(facilitator: User, *, create: bool = False) -> ConsultSettings | None:
    """The facilitator's settings row; with ``create``, a new one with the defaults of ``SETTINGS``."""
    row = db.session.scalar(select(ConsultSettings).where(ConsultSettings.facilitator_id == facilitator.id))
    if row is None and create:
        row = ConsultSettings(facilitator_id=facilitator.id, tz=facilitator.tz if is_valid_zone(facilitator.tz) else practice.timezone(),
                              **defaults())
        db.session.add(row)
        db.session.flush()
    return row


def settings_of(facilitators) -> dict[int, ConsultSettings]:
    """The settings rows of ``facilitators`` in one query: {facilitator id: row}, in their order."""
    ids = [f.id for f in facilitators]
    if not ids:
        return {}
    rows = {r.facilitator_id: r for r in db.session.scalars(
        select(ConsultSettings).where(ConsultSettings.facilitator_id.in_(ids)))}
    return {i: rows[i] for i in ids if i in rows}


def _require_facilitator(user: User) -> None:
    if user is None or user.role != Role.FACILITATOR:
        raise PermissionDenied("Only facilitators publish consult availability.")


def update_settings(facilitator: User, *, tz: str, duration_minutes: int, buffer_before_minutes: int,
                    buffer_after_minutes: int, min_notice_minutes: int, horizon_days: int,
                    daily_cap: int | None, slot_interval_minutes: int, change_cutoff_hours: int,
                    video_link: str | None, accepting_bookings: bool, actor: User | None = None,
                    ctx: RequestContext | None = None) -> ConsultSettings:
    """Every number within its limit (``retreat.consults.settings.SETTINGS``), a valid zone and an
    http(s) video link; one ValidationFailed lists every field that is not."""
    _require_facilitator(facilitator)
    values = {"duration_minutes": duration_minutes, "buffer_before_minutes": buffer_before_minutes,
              "buffer_after_minutes": buffer_after_minutes, "min_notice_minutes": min_notice_minutes,
              "horizon_days": horizon_days, "daily_cap": daily_cap, "slot_interval_minutes": slot_interval_minutes,
              "change_cutoff_hours": change_cutoff_hours}
    errors: dict[str, list[str]] = {}
    if not is_valid_zone(tz):
        errors["tz"] = ["Choose a valid time zone."]
    errors.update(check_ranges(values))
    video_link = (video_link or "").strip() or None
    if video_link and (len(video_link) > MAX_LEN["video_link"] or not _URL_RE.match(video_link)):
        errors["video_link"] = ["Enter the full video-call address, starting with https://."]
    if errors:
        raise ValidationFailed("Some settings need attention.", errors=errors)
    row = get_settings(facilitator, create=True)
    row.tz = tz
    for key, value in values.items():
        setattr(row, key, value)
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
        select(Consultation).where(Consultation.facilitator_id == facilitator.id, holds_time(),
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
