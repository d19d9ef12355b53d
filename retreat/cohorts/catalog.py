"""Retreats, cohorts and sessions (managed by facilitators and admins), the program guide PDF,
and the facilitator roster (statuses only: never clinical details).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from retreat import audit
from retreat.accounts.models import ProviderOrganization, Role, User
from retreat.cohorts import clearance_gate, enrollment, seats
from retreat.cohorts.models import (
    Attendance,
    AttendanceStatus,
    Cohort,
    CohortSession,
    CohortStatus,
    DepositTiming,
    Enrollment,
    Retreat,
    RosterNote,
    SeatState,
    SessionKind,
)
from retreat.cohorts.models import (
    EnrollmentStatus as S,
)
from retreat.core import locking, signals
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.money import MoneyError, format_money, normalize_currency
from retreat.timeutil import is_valid_zone, local_date

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
GUIDE_MAX_BYTES = 10 * 1024 * 1024
NOTE_MAX = 2000
STATUS_FLOW = {
    CohortStatus.DRAFT: {CohortStatus.OPEN, CohortStatus.CANCELLED},
    CohortStatus.OPEN: {CohortStatus.CLOSED, CohortStatus.COMPLETED, CohortStatus.CANCELLED},
    CohortStatus.CLOSED: {CohortStatus.OPEN, CohortStatus.COMPLETED, CohortStatus.CANCELLED},
    CohortStatus.COMPLETED: set(),
    CohortStatus.CANCELLED: set(),
}
SESSION_KIND_LABELS = {SessionKind.ORIENTATION: "Orientation", SessionKind.DOSING: "Dosing session",
                       SessionKind.IFS: "IFS group session", SessionKind.INTEGRATION_CIRCLE: "Integration circle"}


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:120]


# --------------------------------------------------------------------------------------------
# Retreats
# --------------------------------------------------------------------------------------------


def save_retreat(retreat: Retreat | None, *, title: str, slug: str, summary: str, description: str,
                 location: str, included: str, is_published: bool, actor: User, now: datetime) -> Retreat:
    title = (title or "").strip()
    slug = (slug or "").strip().lower() or slugify(title)
    errors = {}
    if not title or len(title) > 200:
        errors["title"] = ["Give a title of at most 200 characters."]
    if not SLUG_RE.match(slug) or len(slug) > 120:
        errors["slug"] = ["Use lower-case letters, digits and single dashes."]
    clash = db.session.scalar(select(Retreat).where(Retreat.slug == slug))
    if clash is not None and (retreat is None or clash.id != retreat.id):
        errors["slug"] = ["Another retreat already uses this web address."]
    if errors:
        raise ValidationFailed("Check the retreat details.", errors=errors)
    if retreat is None:
        retreat = Retreat(created_at=now)
        db.session.add(retreat)
    retreat.title, retreat.slug = title, slug
    retreat.summary = (summary or "").strip()[:400]
    retreat.description = (description or "").strip()
    retreat.location = (location or "").strip()[:200]
    retreat.included = (included or "").strip()
    retreat.is_published = bool(is_published)
    retreat.updated_at = now
    db.session.flush()
    audit.record("retreat.saved", actor=actor, object_type="retreat", object_id=retreat.id, now=now)
    return retreat


def store_guide(retreat: Retreat, *, filename: str, data: bytes, upload_dir: str | Path, actor: User,
                now: datetime, max_bytes: int = GUIDE_MAX_BYTES) -> Retreat:
    """Keep a program guide PDF under a random name; the original name is used for downloads."""
    if not data:
        raise ValidationFailed("Choose a PDF file to upload.", field="guide")
    if len(data) > max_bytes:
        raise ValidationFailed(f"The guide must be at most {max_bytes // (1024 * 1024)} MB.", field="guide")
    if not data.startswith(b"%PDF-"):
        raise ValidationFailed("That file is not a PDF.", field="guide")
    original = Path(filename or "guide.pdf").name
    original = re.sub(r"[^A-Za-z0-9._ -]", "_", original)[:150] or "guide.pdf"
    if not original.lower().endswith(".pdf"):
        original += ".pdf"
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stored = f"{secrets.token_hex(16)}.pdf"
    (folder / stored).write_bytes(data)
    old = retreat.guide_stored_name
    retreat.guide_filename, retreat.guide_stored_name, retreat.guide_size = original, stored, len(data)
    retreat.updated_at = now
    if old and old != stored and re.fullmatch(r"[0-9a-f]{32}\.pdf", old):
        (folder / old).unlink(missing_ok=True)
    audit.record("retreat.guide_uploaded", actor=actor, object_type="retreat", object_id=retreat.id,
                 details={"size": len(data)}, now=now)
    return retreat


def guide_path(retreat: Retreat, upload_dir: str | Path) -> Path | None:
    name = retreat.guide_stored_name
    if not name or not re.fullmatch(r"[0-9a-f]{32}\.pdf", name):
        return None
    path = Path(upload_dir) / name
    return path if path.is_file() else None


def get_retreat_by_slug(slug: str, *, published_only: bool = True) -> Retreat:
    r = db.session.scalar(select(Retreat).where(Retreat.slug == slug))
    if r is None or (published_only and not r.is_published):
        raise NotFound("No such retreat.")
    return r


def all_retreats() -> list[Retreat]:
    return list(db.session.scalars(select(Retreat).options(selectinload(Retreat.cohorts)).order_by(Retreat.title)))


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------


@dataclass
class CohortInput:
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    currency: str
    price_minor: int
    deposit_minor: int
    balance_due_on: date | None
    refund_policy: str
    deposit_timing: str
    provider_organization_id: int | None
    hold_minutes: int = 30
    offer_hours: int = 48
    screening_fee_minor: int = 0


def _validate_cohort(data: CohortInput) -> dict:
    errors: dict[str, list[str]] = {}
    if not (data.title or "").strip() or len(data.title) > 200:
        errors["title"] = ["Give a title of at most 200 characters."]
    if data.ends_at <= data.starts_at:
        errors["ends_at"] = ["The end must be after the start."]
    if not is_valid_zone(data.timezone):
        errors["timezone"] = ["Choose a time zone from the list."]
    if not 1 <= data.capacity <= 500:
        errors["capacity"] = ["Capacity must be between 1 and 500."]
    try:
        normalize_currency(data.currency)
    except MoneyError:
        errors["currency"] = ["Choose a currency."]
    if data.price_minor <= 0:
        errors["price"] = ["The price must be more than zero."]
    if not 0 <= data.deposit_minor <= data.price_minor:
        errors["deposit"] = ["The deposit must be between zero and the price."]
    fee_error = screening_fee_error(data.screening_fee_minor, data.price_minor, data.deposit_minor, data.currency)
    if fee_error:
        errors["screening_fee"] = [fee_error]
    if data.balance_due_on and data.balance_due_on > data.starts_at.date():
        errors["balance_due_on"] = ["The balance must be due before the cohort starts."]
    if data.deposit_timing not in {d.value for d in DepositTiming}:
        errors["deposit_timing"] = ["Choose when the deposit is taken."]
    if data.provider_organization_id is not None and db.session.get(
            ProviderOrganization, data.provider_organization_id) is None:
        errors["provider_organization_id"] = ["Choose a partner provider organisation."]
    if not 5 <= data.hold_minutes <= 24 * 60:
        errors["hold_minutes"] = ["Seat holds last between 5 minutes and a day."]
    if not 1 <= data.offer_hours <= 14 * 24:
        errors["offer_hours"] = ["Waitlist offers last between 1 hour and 14 days."]
    return errors


def screening_fee_error(fee: int, price: int, deposit: int, currency: str) -> str:
    """Why a screening fee is refused ("" when it is fine). The fee is credited against the price as
    the first part of the deposit, so it must be less than the deposit (paying the rest of the
    deposit then confirms the seat)."""
    if fee == 0:
        return ""
    try:
        cur = normalize_currency(currency)
    except MoneyError:
        cur = "USD"
    if fee < 0:
        return "The screening fee cannot be negative; leave it at 0 for no fee."
    if fee > price:
        return f"The screening fee cannot be more than the price ({format_money(price, cur)})."
    if fee >= deposit:
        return ("The screening fee counts toward the deposit, so it must be less than the deposit "
                f"({format_money(deposit, cur)}).")
    return ""


def save_cohort(cohort: Cohort | None, retreat: Retreat, data: CohortInput, *, actor: User,
                now: datetime) -> Cohort:
    errors = _validate_cohort(data)
    if cohort is not None:
        cohort = seats.lock_cohort(cohort.id)
        if data.capacity < cohort.seats_taken:
            errors["capacity"] = [f"{cohort.seats_taken} seats are already taken or offered; capacity cannot "
                                  "be lower."]
        if cohort.currency != data.currency.upper() and _has_money(cohort):
            errors["currency"] = ["The currency cannot change once deposits have been paid."]
    if errors:
        raise ValidationFailed("Check the cohort details.", errors=errors)
    before = None if cohort is None else (cohort.starts_at, cohort.ends_at, cohort.timezone)
    if cohort is None:
        cohort = Cohort(retreat_id=retreat.id, seats_taken=0, status=CohortStatus.DRAFT.value, created_at=now)
        db.session.add(cohort)
    cohort.title = data.title.strip()
    cohort.starts_at, cohort.ends_at, cohort.timezone = data.starts_at, data.ends_at, data.timezone
    cohort.capacity = data.capacity
    cohort.currency = data.currency.upper()
    cohort.price_minor, cohort.deposit_minor = data.price_minor, data.deposit_minor
    cohort.screening_fee_minor = data.screening_fee_minor
    cohort.balance_due_on = data.balance_due_on
    cohort.refund_policy = (data.refund_policy or "").strip()
    cohort.deposit_timing = data.deposit_timing
    cohort.provider_organization_id = data.provider_organization_id
    cohort.hold_minutes, cohort.offer_hours = data.hold_minutes, data.offer_hours
    cohort.updated_at = now
    db.session.flush()
    audit.record("cohort.saved", actor=actor, object_type="cohort", object_id=cohort.id, now=now)
    if before != (cohort.starts_at, cohort.ends_at, cohort.timezone):  # new, or its dates moved
        signals.cohort_schedule_changed.send(cohort, now=now, previous_start=before[0] if before else None)
    if cohort.status == CohortStatus.OPEN:
        seats.offer_free_seats(cohort, now=now)  # more capacity: offer it to the waitlist
    return cohort


def _has_money(cohort: Cohort) -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.seat == SeatState.CONFIRMED.value)))


def set_status(cohort: Cohort, status: str, *, actor: User, now: datetime) -> bool:
    try:
        target = CohortStatus(status)
    except ValueError as exc:
        raise ValidationFailed("Choose a status.", field="status") from exc
    cohort = seats.lock_cohort(cohort.id)
    current = CohortStatus(cohort.status)
    if current == target:
        return False
    if target == CohortStatus.CANCELLED and current == CohortStatus.COMPLETED:
        raise Conflict("A completed cohort cannot be cancelled.")
    if target not in STATUS_FLOW[current]:
        raise Conflict(f"A {current.value} cohort cannot become {target.value}.")
    cohort.status = target.value
    cohort.updated_at = now
    audit.record("cohort.status", actor=actor, object_type="cohort", object_id=cohort.id,
                 details={"from": current.value, "to": target.value}, now=now)
    if target == CohortStatus.OPEN:
        seats.offer_free_seats(cohort, now=now)
    if target == CohortStatus.CANCELLED:
        _cancel_enrollments(cohort, actor=actor, now=now)
    return True


def _cancel_enrollments(cohort: Cohort, *, actor: User, now: datetime) -> None:
    """Every active enrollment of a cancelled cohort exits with a full refund (same transaction)."""
    active = [e for e in db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)
                                            .order_by(Enrollment.id)) if e.is_active]
    locking.lock_many(Enrollment, [e.id for e in active])  # all of them first, in id order
    for enr in active:
        enrollment.cohort_cancelled(enr, now=now, actor=actor, reason="The practice cancelled this cohort")


def get_cohort(cohort_id: int) -> Cohort:
    c = db.session.get(Cohort, cohort_id)
    if c is None:
        raise NotFound("No such cohort.")
    return c


def public_cohort(cohort_id: int) -> Cohort:
    c = db.session.get(Cohort, cohort_id)
    if c is None or c.status == CohortStatus.DRAFT or not c.retreat.is_published:
        raise NotFound("No such cohort.")
    return c


def open_cohorts(*, now: datetime | None = None) -> list[Cohort]:
    q = (select(Cohort).join(Cohort.retreat).where(Cohort.status == CohortStatus.OPEN.value,
                                                    Retreat.is_published.is_(True))
         .options(selectinload(Cohort.retreat)).order_by(Cohort.starts_at, Cohort.id))
    if now is not None:
        q = q.where(Cohort.starts_at > now)
    return list(db.session.scalars(q))


def waitlist_open(cohort: Cohort) -> bool:
    return cohort.status == CohortStatus.OPEN and cohort.seats_available == 0


def seats_label(cohort: Cohort) -> str:
    if cohort.status != CohortStatus.OPEN:
        return {"closed": "Applications closed", "completed": "Completed", "cancelled": "Cancelled"}.get(
            cohort.status, "Not open yet")
    left = cohort.seats_available
    if left == 0:
        return "Full — waitlist open"
    return "1 seat left" if left == 1 else f"{left} seats left"


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


def add_session(cohort: Cohort, *, kind: str, title: str, starts_at: datetime, ends_at: datetime,
                location: str, video_url: str, facilitator_id: int | None, actor: User,
                now: datetime) -> CohortSession:
    errors = {}
    if kind not in {k.value for k in SessionKind}:
        errors["kind"] = ["Choose the kind of session."]
    title = (title or "").strip() or SESSION_KIND_LABELS.get(kind, "Session")
    if len(title) > 200:
        errors["title"] = ["Keep the title under 200 characters."]
    if ends_at <= starts_at:
        errors["ends_at"] = ["The end must be after the start."]
    video_url = (video_url or "").strip()
    if video_url and not video_url.startswith(("https://", "http://")):
        errors["video_url"] = ["A video link starts with https://."]
    if facilitator_id is not None:
        person = db.session.get(User, facilitator_id)
        if person is None or person.role not in ("facilitator", "admin"):
            errors["facilitator_id"] = ["Choose a facilitator."]
    if errors:
        raise ValidationFailed("Check the session details.", errors=errors)
    s = CohortSession(cohort_id=cohort.id, kind=kind, title=title, starts_at=starts_at, ends_at=ends_at,
                      location=(location or "").strip()[:200], video_url=video_url[:500],
                      facilitator_id=facilitator_id, created_at=now, updated_at=now)
    db.session.add(s)
    db.session.flush()
    audit.record("cohort.session_added", actor=actor, object_type="cohort", object_id=cohort.id, now=now)
    if kind in (SessionKind.DOSING, SessionKind.INTEGRATION_CIRCLE):  # the circles follow the last dosing
        signals.cohort_schedule_changed.send(cohort, now=now)
    return s


def delete_session(session: CohortSession, *, actor: User, now: datetime) -> None:
    if session.circle_sequence is not None:
        raise Conflict("This circle comes from the integration plan: change the plan's number of weeks instead.")
    audit.record("cohort.session_deleted", actor=actor, object_type="cohort", object_id=session.cohort_id,
                 details={"session": session.id}, now=now)
    cohort, kind = session.cohort, session.kind
    if kind == SessionKind.INTEGRATION_CIRCLE:
        signals.cohort_schedule_changed.send(cohort, now=now, removed_session=session)
    db.session.delete(session)
    if kind == SessionKind.DOSING:
        db.session.flush()
        signals.cohort_schedule_changed.send(cohort, now=now)


def facilitators(cohort: Cohort) -> list[User]:
    """The facilitators of a cohort's sessions; every active facilitator when none is assigned yet."""
    ids = set(db.session.scalars(select(CohortSession.facilitator_id).where(
        CohortSession.cohort_id == cohort.id, CohortSession.facilitator_id.is_not(None))))
    stmt = select(User).where(User.role == Role.FACILITATOR.value, User.is_active_account.is_(True))
    if ids:
        stmt = stmt.where(User.id.in_(ids))
    return list(db.session.scalars(stmt.order_by(User.id)))


def add_note(enr: Enrollment, *, body: str, actor: User, now: datetime) -> RosterNote:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed("Write a note first.", field="body")
    if len(body) > NOTE_MAX:
        raise ValidationFailed(f"Keep notes under {NOTE_MAX} characters.", field="body")
    note = RosterNote(enrollment_id=enr.id, author_id=actor.id, body=body, created_at=now)
    db.session.add(note)
    return note


def notes(enr: Enrollment) -> list[RosterNote]:
    return list(db.session.scalars(select(RosterNote).where(RosterNote.enrollment_id == enr.id)
                                   .order_by(RosterNote.created_at.desc())))


def set_lodging(enr: Enrollment, *, lodging: str, actor: User, now: datetime) -> None:
    lodging = (lodging or "").strip()
    if len(lodging) > 120:
        raise ValidationFailed("Keep the room or lodging under 120 characters.", field="lodging")
    enr.lodging = lodging
    enr.updated_at = now


def record_attendance(session: CohortSession, enr: Enrollment, *, status: str, actor: User,
                      now: datetime) -> Attendance:
    if enr.cohort_id != session.cohort_id:
        raise NotFound("No such participant in this session.")
    try:
        status = AttendanceStatus(status).value
    except ValueError as exc:
        raise ValidationFailed("Choose present, late or absent.", field="status") from exc
    if enr.seat != SeatState.CONFIRMED:
        raise Conflict("Only participants with a confirmed seat can be checked in.")
    if status != AttendanceStatus.ABSENT:
        verdict = session_clearance(session, [enr]).get(enr.id)
        if verdict is not None and not verdict.ok:
            raise Conflict(f"{enr.participant.name} cannot be marked {status} at this dosing session on "
                           f"{local_date(session.starts_at, session.cohort.timezone):%a %d %b %Y}: "
                           f"{verdict.reason}. Only someone with a valid medical clearance on that date can "
                           "be checked in.", field="status")
    row = db.session.scalar(select(Attendance).where(Attendance.session_id == session.id,
                                                     Attendance.enrollment_id == enr.id))
    if row is None:
        row = Attendance(session_id=session.id, enrollment_id=enr.id, created_at=now)
        db.session.add(row)
    row.status, row.recorded_by_id, row.recorded_at, row.updated_at = status, actor.id, now, now
    db.session.flush()
    return row


def checkin_rows(session: CohortSession) -> list[tuple[Enrollment, Attendance | None]]:
    enrs = list(db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == session.cohort_id, Enrollment.seat == SeatState.CONFIRMED.value)
        .options(selectinload(Enrollment.participant)).order_by(Enrollment.id)))
    marks = {a.enrollment_id: a for a in db.session.scalars(select(Attendance).where(
        Attendance.session_id == session.id))}
    return sorted(((e, marks.get(e.id)) for e in enrs), key=lambda p: p[0].participant.name.lower())


def session_clearance(session: CohortSession, enrollments: list[Enrollment]) -> dict[int, clearance_gate.Verdict]:
    """For a dosing session: each enrollment's clearance on the session's local date (the check-in
    page shows it beside each name; nobody without a valid one is marked present). Empty for
    other kinds of session, which need no clearance."""
    if session.kind != SessionKind.DOSING:
        return {}
    return clearance_gate.verdicts(enrollments, local_date(session.starts_at, session.cohort.timezone))


def board(cohort: Cohort) -> dict[str, list[Enrollment]]:
    """Pipeline board for facilitators: enrollments by status column."""
    cols: dict[str, list[Enrollment]] = {s.value: [] for s in S}
    for enr in db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)
                                  .options(selectinload(Enrollment.participant)).order_by(Enrollment.id)):
        cols[enr.status].append(enr)
    return cols
