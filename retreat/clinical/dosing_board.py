"""Read models of a dosing day: the provider's board (every entry, through the audited read path),
the retreat team's status-only view, the organisation's upcoming sessions, and the people not
ready for their next dosing day (for the facilitator home's panel).

Facilitators see a status word per person (ready / not ready with the missing non-clinical item,
in session, needs attention, discharged) and only the notes a provider marked shareable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from retreat.accounts.models import User
from retreat.clinical import dosing, dosing_access, readiness, staffing
from retreat.clinical.dosing_models import STATE_LABELS, DosingRecord, DosingState
from retreat.cohorts import clearance_gate, team
from retreat.cohorts import readiness as readiness_panel
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, SeatState, SessionKind
from retreat.core.context import Actor, RequestContext
from retreat.core.errors import Conflict
from retreat.core.pagination import Batch
from retreat.extensions import db


@dataclass
class BoardRow:
    enrollment: Enrollment
    record: DosingRecord | None
    state: DosingState
    readiness: readiness.Readiness
    entries: list[dosing_access.EntryView] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.record.version if self.record else 1

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


def participants(session: CohortSession) -> list[Enrollment]:
    """Who takes part in a dosing session: the cohort's confirmed seats, by name."""
    enrs = db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == session.cohort_id, Enrollment.seat == SeatState.CONFIRMED.value)
        .options(selectinload(Enrollment.participant)))
    return sorted((e for e in enrs if not e.has_left), key=lambda e: (e.participant.name.lower(), e.id))


def _records(session: CohortSession) -> dict[int, DosingRecord]:
    return {r.enrollment_id: r for r in db.session.scalars(
        select(DosingRecord).where(DosingRecord.session_id == session.id)
        .options(selectinload(DosingRecord.enrollment), selectinload(DosingRecord.session)))}


def provider_board(session: CohortSession, actor: User, *, now: datetime,
                   ctx: RequestContext | None) -> list[BoardRow]:
    """Every person with their state, readiness and entries (each record read is audited)."""
    enrs = participants(session)
    records = _records(session)
    ready = readiness.readiness(session, enrs)
    written = [r for r in records.values() if r.version > 1]
    entries = dosing_access.read_entries_many(actor, written, ctx=ctx, now=now)
    rows = []
    for e in enrs:
        rec = records.get(e.id)
        state = dosing.display_state(rec, now) if rec else DosingState.NOT_ARRIVED
        rows.append(BoardRow(e, rec, state, ready[e.id], entries.get(rec.id, []) if rec else []))
    return rows


@dataclass(frozen=True)
class TeamRow:
    name: str
    enrollment_id: int
    status: str  # ready | not_ready | in_session | needs_attention | discharged | transferred
    label: str
    shared_note: str


def team_view(session: CohortSession, actor: User, *, now: datetime, ctx: RequestContext | None) -> list[TeamRow]:
    """Status only, for the retreat team; a note appears only when the provider shared it."""
    enrs = participants(session)
    records = _records(session)
    ready = readiness.readiness(session, enrs)
    out = []
    for e in enrs:
        rec = records.get(e.id)
        note = dosing_access.shared_note(actor, rec, ctx=ctx, now=now) if rec else ""
        if rec is None or rec.state == DosingState.NOT_ARRIVED:
            r = ready[e.id]
            status, label = ("ready", "Ready") if r.ready else ("not_ready", "Not ready: " + _team_missing(r))
        elif rec.state == DosingState.DISCHARGED:
            status, label = "discharged", "Discharged"
        elif rec.state == DosingState.TRANSFERRED or rec.needs_attention:
            status, label = "needs_attention", "Needs attention — the provider is with them"
        elif rec.state in (DosingState.CHECKED_IN, DosingState.PRE_CHECKS_DONE):
            status, label = "in_session", "Arrived — with the provider"
        else:
            status, label = "in_session", "In session"
        out.append(TeamRow(e.participant.name, e.id, status, label, note))
    return out


def require_ready_for_checkin(session: CohortSession, enrollment: Enrollment) -> None:
    """The retreat team may mark someone present at a dosing session only when they are ready, or
    when an assigned clinician checked them in on the board with a written override."""
    rec = db.session.scalar(select(DosingRecord).where(DosingRecord.session_id == session.id,
                                                       DosingRecord.enrollment_id == enrollment.id))
    if rec is not None and rec.state != DosingState.NOT_ARRIVED:
        return  # the provider checked them in (an override is recorded and shown on the board)
    r = readiness.readiness(session, [enrollment])[enrollment.id]
    if not r.ready:
        raise Conflict(f"{enrollment.participant.name} is not ready for this dosing session: {_team_missing(r)}. "
                       "Only a clinician assigned to the session can check them in anyway, with a written reason.",
                       field="status")


def _team_missing(r: readiness.Readiness) -> str:
    """The missing items in the team's words; a clearance problem is only "medical clearance"."""
    items = ["medical clearance" if m == r.clearance_label else m[:1].lower() + m[1:] for m in r.missing]
    return "; ".join(dict.fromkeys(items))


def upcoming_sessions(org_id: int, now: datetime) -> list[CohortSession]:
    """The organisation's dosing sessions that have not ended yet, soonest first."""
    return list(db.session.scalars(
        select(CohortSession).join(Cohort, Cohort.id == CohortSession.cohort_id)
        .where(CohortSession.kind == SessionKind.DOSING, Cohort.provider_organization_id == org_id,
               CohortSession.ends_at >= now)
        .options(selectinload(CohortSession.cohort).selectinload(Cohort.retreat))
        .order_by(CohortSession.starts_at, CohortSession.id)))


@dataclass(frozen=True)
class NotReady:
    cohort_id: int
    session_id: int
    session_title: str
    starts_at: datetime
    enrollment_id: int
    name: str
    missing: tuple[str, ...]  # non-clinical words ("No ride home arranged", "medical clearance")


def not_ready_for_next_dosing(cohort_ids: list[int], today: date) -> list[NotReady]:
    """For each cohort, its next dosing session on or after ``today`` (the cohort's local date) and
    the people not ready for it, with what is missing (for the facilitator home's panel)."""
    out: list[NotReady] = []
    if not cohort_ids:
        return out
    sessions = db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id.in_(list(cohort_ids)), CohortSession.kind == SessionKind.DOSING)
        .order_by(CohortSession.starts_at, CohortSession.id))
    nexts: dict[int, CohortSession] = {}
    for s in sessions:
        if s.cohort_id not in nexts and staffing.session_day(s) >= today:
            nexts[s.cohort_id] = s
    for cohort_id in sorted(nexts):
        s = nexts[cohort_id]
        enrs = participants(s)
        ready = readiness.readiness(s, enrs)
        for e in enrs:
            r = ready[e.id]
            if not r.ready:
                out.append(NotReady(cohort_id, s.id, s.title, s.starts_at, e.id, e.participant.name,
                                    tuple(_team_missing(r).split("; "))))
    return out


def entry_summary(entry: dosing_access.EntryView) -> str:
    """One line for the board and the session record."""
    b = entry.body
    k = entry.kind
    if k in ("pre_vitals", "post_vitals"):
        parts = [f"BP {b.get('systolic')}/{b.get('diastolic')}", f"HR {b.get('heart_rate')}", f"SpO2 {b.get('spo2')}%"]
        if b.get("temperature") is not None:
            parts.append(f"{b['temperature']} °C")
        if b.get("flags"):
            parts.append("flags: " + ", ".join(b["flags"]))
        if b.get("note"):
            parts.append(b["note"])
        return " · ".join(parts)
    if k == "dose":
        return " ".join(str(x) for x in (b.get("medicine"), b.get("amount"), b.get("unit"),
                                         dosing.ROUTES.get(b.get("route"), b.get("route"))) if x)
    if k == "adverse_event":
        return f"{b.get('severity')}: {b.get('event')} — action: {b.get('action')}"
    if k == "discharge":
        return ("All discharge criteria confirmed" + (f" · picked up by {b['driver']}" if b.get("driver") else "")
                + (f" · {b['note']}" if b.get("note") else ""))
    text = b.get("observation") or b.get("reason") or b.get("override_reason") or b.get("destination") or b.get("note")
    return str(text) if text else ""


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


NOT_READY_HORIZON = timedelta(days=14)
NOT_READY_LIMIT = 10


def not_ready_panel(actor: Actor, now: datetime) -> Batch:
    """The facilitator home's "not ready for the next dosing day" panel (registered into
    ``retreat.cohorts.readiness``): for each cohort on ``actor``'s team whose next dosing session starts
    within 14 days, the people the one readiness rule finds not ready, with the missing items in the
    team's words (never clinical) and a link to their enrollment. Statements: a fixed few per cohort,
    whatever the number of people."""
    cohorts = list(db.session.scalars(
        select(Cohort).where(team.on_team(actor, Cohort.id), Cohort.id.in_(
            select(CohortSession.cohort_id).where(CohortSession.kind == SessionKind.DOSING,
                                                  CohortSession.starts_at >= now,
                                                  CohortSession.starts_at < now + NOT_READY_HORIZON)))
        .order_by(Cohort.starts_at, Cohort.id)))
    rows: list[readiness_panel.NotReady] = []
    for cohort in cohorts:
        for r in not_ready_for_next_dosing([cohort.id], clearance_gate.cohort_today(cohort, now)):
            if r.starts_at >= now + NOT_READY_HORIZON:
                continue
            rows.append(readiness_panel.NotReady(
                enrollment_id=r.enrollment_id, participant_name=r.name, cohort_title=cohort.title,
                session_starts_at=r.starts_at, missing=r.missing, url=f"/facilitator/enrollments/{r.enrollment_id}"))
    rows.sort(key=lambda r: (r.session_starts_at, r.participant_name.lower(), r.enrollment_id))
    return Batch(items=rows[:NOT_READY_LIMIT], total=len(rows))


readiness_panel.register(not_ready_panel)
