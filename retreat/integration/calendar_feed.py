"""What a person's calendar subscription holds, as one iCalendar file.

- A facilitator: the consultations they host, and the sessions and circles of the cohorts they run
  (``cohorts.team``). Guests appear by name (it is the facilitator's own calendar); never the
  reason for booking, answers or notes.
- A participant: the sessions and circles of the cohorts they hold a seat in, and their own
  consultations. Nobody else's name appears: no facilitator, no other participant.
- An admin: the consultations they host and the sessions assigned to them.

Times are UTC (``...Z``), which every calendar shows in its own zone. UIDs are stable and are the
ones the emailed invites use (``circle-<id>@retreat``, the consult's ``calendar_uid``), so an
event moves instead of being duplicated. Nothing disappears silently: a cancelled consult, a
session deleted from the plan (kept as a ``CalendarTombstone``) and the sessions of a cohort the
participant left are published with ``STATUS:CANCELLED`` and a higher SEQUENCE, so subscribed
calendars remove them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import ForeignKey, Integer, String, event, insert, or_, select
from sqlalchemy.orm import Mapped, joinedload, mapped_column

from retreat.accounts.models import Role, User
from retreat.cohorts import team
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, SeatState, SessionKind
from retreat.consults.models import Consultation, ConsultStatus
from retreat.core import urls
from retreat.extensions import db
from retreat.messaging.ics import PRODID
from retreat.timeutil import now_utc

PAST = timedelta(days=90)  # how far back a feed reaches
AHEAD = timedelta(days=400)
REFRESH = timedelta(hours=1)  # asked of subscribing calendars


class CalendarTombstone(db.Model):
    """A session that was deleted, kept so feeds can publish it as cancelled."""

    __tablename__ = "calendar_tombstones"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    facilitator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at: Mapped[datetime] = mapped_column()


def session_uid(s: CohortSession) -> str:
    prefix = "circle" if s.kind == SessionKind.INTEGRATION_CIRCLE else "session"
    return f"{prefix}-{s.id}@retreat"


@event.listens_for(CohortSession, "after_delete")
def _keep_tombstone(mapper, connection, s: CohortSession) -> None:
    """Every way a session is deleted (by hand, or a circle the plan no longer has) leaves a
    tombstone in the same transaction."""
    connection.execute(insert(CalendarTombstone).values(
        uid=session_uid(s), cohort_id=s.cohort_id, facilitator_id=s.facilitator_id, title=s.title,
        starts_at=s.starts_at, ends_at=s.ends_at, sequence=(s.calendar_sequence or 0) + 1,
        deleted_at=now_utc()))


@dataclass(frozen=True)
class FeedEvent:
    uid: str
    start: datetime
    end: datetime
    summary: str
    sequence: int = 0
    cancelled: bool = False
    location: str = ""
    description: str = ""
    url: str = ""
    modified: datetime | None = None


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _window(now: datetime) -> tuple[datetime, datetime]:
    return now - PAST, now + AHEAD


# -- facilitators and admins -------------------------------------------------------------------

def _hosted_consults(user: User, now: datetime) -> list[FeedEvent]:
    lo, hi = _window(now)
    rows = db.session.scalars(select(Consultation).where(
        Consultation.facilitator_id == user.id, Consultation.start_at >= lo, Consultation.start_at < hi)
        .order_by(Consultation.start_at, Consultation.id))
    base = urls.base_url()
    return [FeedEvent(uid=c.calendar_uid, start=c.start_at, end=c.end_at, sequence=c.sequence,
                      cancelled=c.status == ConsultStatus.CANCELLED,
                      summary=f"Free consultation: {c.guest_name}",
                      description=f"Open in retreat: {base}/facilitator/consults/{c.id}",
                      url=f"{base}/facilitator/consults/{c.id}", modified=c.updated_at) for c in rows]


def _staff_sessions(user: User, now: datetime) -> list[FeedEvent]:
    lo, hi = _window(now)
    mine = CohortSession.facilitator_id == user.id
    scope = or_(mine, team.on_team(user, CohortSession.cohort_id)) if user.role == Role.FACILITATOR else mine
    rows = db.session.scalars(select(CohortSession).where(
        scope, CohortSession.starts_at >= lo, CohortSession.starts_at < hi)
        .options(joinedload(CohortSession.cohort).joinedload(Cohort.retreat))
        .order_by(CohortSession.starts_at, CohortSession.id))
    base = urls.base_url()
    events = []
    for s in rows:
        link = (f"{base}/facilitator/circles/{s.id}" if s.kind == SessionKind.INTEGRATION_CIRCLE
                else f"{base}/facilitator/cohorts/{s.cohort_id}")
        events.append(FeedEvent(
            uid=session_uid(s), start=s.starts_at, end=s.ends_at, sequence=s.calendar_sequence,
            summary=f"{s.title} — {s.cohort.title}", location=s.location or s.video_url,
            description="\n".join(p for p in (f"{s.cohort.retreat.title}, {s.cohort.title}",
                                              f"Join online: {s.video_url}" if s.video_url else "",
                                              f"Open in retreat: {link}") if p),
            url=link, modified=s.updated_at))
    tombs = db.session.scalars(select(CalendarTombstone).where(
        CalendarTombstone.starts_at >= lo, CalendarTombstone.starts_at < hi,
        or_(CalendarTombstone.facilitator_id == user.id,
            team.on_team(user, CalendarTombstone.cohort_id) if user.role == Role.FACILITATOR
            else CalendarTombstone.facilitator_id == user.id)))
    events += [_cancelled_tomb(t) for t in tombs]
    return events


# -- participants ------------------------------------------------------------------------------

def _participant_sessions(user: User, now: datetime) -> list[FeedEvent]:
    lo, hi = _window(now)
    enrollments = list(db.session.scalars(select(Enrollment).where(Enrollment.participant_id == user.id)))
    taking_part = {e.cohort_id for e in enrollments if not e.has_left and e.seat != SeatState.NONE.value}
    left = {e.cohort_id for e in enrollments if e.has_left} - taking_part
    cohort_ids = sorted(taking_part | left)
    if not cohort_ids:
        return []
    rows = db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id.in_(cohort_ids), CohortSession.starts_at >= lo, CohortSession.starts_at < hi)
        .options(joinedload(CohortSession.cohort).joinedload(Cohort.retreat))
        .order_by(CohortSession.starts_at, CohortSession.id))
    base = urls.base_url()
    events = []
    for s in rows:
        gone = s.cohort_id in left
        link = f"{base}/me/circles" if s.kind == SessionKind.INTEGRATION_CIRCLE else f"{base}/me/enrollments"
        events.append(FeedEvent(
            uid=session_uid(s), start=s.starts_at, end=s.ends_at,
            sequence=s.calendar_sequence + (1 if gone else 0), cancelled=gone,
            summary=f"{s.title} ({s.cohort.retreat.title})", location=s.location or s.video_url,
            description="\n".join(p for p in (f"{s.cohort.retreat.title}, {s.cohort.title}",
                                              f"Join online: {s.video_url}" if s.video_url else "",
                                              f"Open in retreat: {link}") if p),
            url=link, modified=s.updated_at))
    tombs = db.session.scalars(select(CalendarTombstone).where(
        CalendarTombstone.cohort_id.in_(cohort_ids), CalendarTombstone.starts_at >= lo,
        CalendarTombstone.starts_at < hi))
    events += [_cancelled_tomb(t) for t in tombs]
    return events


def _own_consults(user: User, now: datetime) -> list[FeedEvent]:
    lo, hi = _window(now)
    rows = db.session.scalars(select(Consultation).where(
        Consultation.participant_id == user.id, Consultation.start_at >= lo, Consultation.start_at < hi)
        .order_by(Consultation.start_at, Consultation.id))
    return [FeedEvent(uid=c.calendar_uid, start=c.start_at, end=c.end_at, sequence=c.sequence,
                      cancelled=c.status == ConsultStatus.CANCELLED, summary="Free consultation",
                      description="Your free 1:1 consultation. The joining details are in your confirmation email.",
                      modified=c.updated_at) for c in rows]


def _cancelled_tomb(t: CalendarTombstone) -> FeedEvent:
    return FeedEvent(uid=t.uid, start=t.starts_at, end=t.ends_at, sequence=t.sequence, cancelled=True,
                     summary=f"Cancelled: {t.title}", modified=t.deleted_at)


# -- the file ----------------------------------------------------------------------------------

def events_for(user: User, now: datetime) -> list[FeedEvent]:
    if user.role == Role.PARTICIPANT:
        events = _participant_sessions(user, now) + _own_consults(user, now)
    elif user.role in (Role.FACILITATOR, Role.ADMIN):
        events = _hosted_consults(user, now) + _staff_sessions(user, now)
    else:
        events = []
    seen: dict[str, FeedEvent] = {}
    for ev in sorted(events, key=lambda e: (_utc(e.start), e.uid)):
        # a live session wins over a tombstone of the same uid (ids are never reused, but be safe)
        if ev.uid not in seen or seen[ev.uid].cancelled:
            seen[ev.uid] = ev
    return list(seen.values())


def build(user: User, *, now: datetime, practice_name: str = "retreat") -> bytes:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"{practice_name}: your sessions")
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")  # the same hour, as the text Outlook reads
    stamp = _utc(now)
    for fe in events_for(user, now):
        ev = Event()
        ev.add("uid", fe.uid)
        ev.add("sequence", int(fe.sequence or 0))
        ev.add("dtstamp", stamp)
        ev.add("dtstart", _utc(fe.start))
        ev.add("dtend", _utc(fe.end))
        ev.add("summary", fe.summary)
        ev.add("status", "CANCELLED" if fe.cancelled else "CONFIRMED")
        if fe.modified is not None:
            ev.add("last-modified", _utc(fe.modified))
        if fe.location:
            ev.add("location", fe.location)
        if fe.description:
            ev.add("description", fe.description)
        if fe.url:
            ev.add("url", fe.url)
        cal.add_component(ev)
    return cal.to_ical()
