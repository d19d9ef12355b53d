"""The facilitators' roster of a cohort: logistics and statuses, never clinical details.

A read model over the cohort's enrollments, their checklists, consents and notes, and the
clearance statuses of ``retreat.clinical.clearance``; conditions a provider marked shareable are
added for a signed-in facilitator, read through the audited path (``retreat.clinical.access``).
It lives in ``clinical`` because it is the layer that may read clearance status.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from retreat.accounts.models import User
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance_status
from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import ChecklistItem, Cohort, Enrollment, RosterNote, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.spreadsheet import safe_row
from retreat.extensions import db
from retreat.timeutil import now_utc

CLEARANCE_LABEL = {
    S.APPLIED: "Not started", S.INTAKE_SUBMITTED: "Intake in", S.CLEARANCE_PENDING: "Pending",
    S.CLEARED: "Cleared", S.DEPOSIT_PAID: "Cleared", S.BALANCE_PAID: "Cleared", S.ATTENDED: "Cleared",
    S.COMPLETED: "Cleared", S.NOT_CLEARED: "Not cleared", S.WITHDRAWN: "—", S.DECLINED: "—",
    S.OFFER_EXPIRED: "—", S.CANCELLED: "—",
}
ROSTER_FILTERS = {
    "active": "Active (not exited)", "confirmed": "Seat confirmed", "waitlist": "Waitlist",
    "pending": "Awaiting clearance", "exited": "Withdrawn / declined / not cleared / cancelled",
}


@dataclass
class RosterRow:
    enrollment: Enrollment
    name: str
    email: str
    status: str
    intake: str
    clearance: str
    payment: str
    checklist_done: int
    checklist_total: int
    consents_ok: bool
    lodging: str
    waitlist_place: int
    notes: int
    clearance_key: str = ""
    shareable_conditions: str = ""


def _intake_label(status: S) -> str:
    if status == S.APPLIED:
        return "Not yet"
    if status in (S.WITHDRAWN, S.DECLINED, S.OFFER_EXPIRED, S.CANCELLED):
        return "—"
    return "Submitted"


def _payment_label(enr: Enrollment) -> str:
    if enr.status in (S.BALANCE_PAID, S.ATTENDED, S.COMPLETED):
        return "Paid in full"
    if enr.seat == SeatState.CONFIRMED:
        return "Deposit paid"
    if enr.seat == SeatState.HELD:
        return "Paying (seat held)"
    if enr.seat == SeatState.OFFERED:
        return "Seat offered"
    return "Not paid"


INTAKE_LABEL = {"not_started": "Not yet", "intake_draft": "In progress"}
CLEARED_KEYS = frozenset({"cleared", "cleared_with_conditions"})
NOT_CLEARED_KEYS = frozenset({"not_cleared", "expired", "lapsed"})


ROSTER_PAGE_SIZE = 50


@dataclass
class RosterPage:
    rows: list[RosterRow]
    page: int
    pages: int
    total: int


def roster(cohort: Cohort, *, status_filter: str = "active", viewer: User | None = None,
           now: datetime | None = None, ctx=None) -> list[RosterRow]:
    """The cohort's roster. Intake and clearance come from the clearance records (statuses only);
    with a ``viewer`` (a facilitator), conditions the provider marked shareable are added, read
    through clinical_access (audited)."""
    return _roster(cohort, status_filter=status_filter, viewer=viewer, now=now, ctx=ctx).rows


def roster_page(cohort: Cohort, *, page: int = 1, per_page: int = ROSTER_PAGE_SIZE, status_filter: str = "active",
                viewer: User | None = None, now: datetime | None = None, ctx=None) -> RosterPage:
    """One page of ``roster``: statuses, consents and shared conditions are read for that page only."""
    return _roster(cohort, status_filter=status_filter, viewer=viewer, now=now, ctx=ctx, page=page,
                   per_page=per_page)


def _roster(cohort: Cohort, *, status_filter: str, viewer: User | None, now: datetime | None, ctx,
            page: int | None = None, per_page: int = ROSTER_PAGE_SIZE) -> RosterPage:
    now = now or now_utc()

    q = (select(Enrollment).where(Enrollment.cohort_id == cohort.id)
         .options(joinedload(Enrollment.participant))
         .order_by(Enrollment.applied_at, Enrollment.id))
    rows = []
    # Checklist progress as one aggregate (loading every item would cost a query per 500 enrollments).
    progress = {enr_id: (done or 0, total) for enr_id, done, total in db.session.execute(
        select(ChecklistItem.enrollment_id, func.count(ChecklistItem.completed_at), func.count())
        .join(Enrollment, Enrollment.id == ChecklistItem.enrollment_id).where(Enrollment.cohort_id == cohort.id)
        .group_by(ChecklistItem.enrollment_id))}
    note_counts = dict(db.session.execute(select(RosterNote.enrollment_id, func.count()).join(
        Enrollment, Enrollment.id == RosterNote.enrollment_id).where(Enrollment.cohort_id == cohort.id)
        .group_by(RosterNote.enrollment_id)).all())
    by_status = status_filter in {s.value for s in S}
    places = seats.places(cohort.id)
    for enr in db.session.scalars(q):
        active = enr.is_active or enr.status == S.COMPLETED
        if status_filter == "active" and not active:
            continue
        if status_filter == "confirmed" and enr.seat != SeatState.CONFIRMED:
            continue
        if status_filter == "waitlist" and not enr.is_waitlisted:
            continue
        if status_filter == "pending" and enr.status not in (S.INTAKE_SUBMITTED, S.CLEARANCE_PENDING):
            continue
        if status_filter == "exited" and active:
            continue
        if by_status and enr.status != status_filter:
            continue
        done, total = progress.get(enr.id, (0, 0))
        status = S(enr.status)
        rows.append(RosterRow(
            enrollment=enr, name=enr.participant.name, email=enr.participant.email,
            status=enrollment.label(status),
            intake=_intake_label(status),
            clearance=CLEARANCE_LABEL[status], payment=_payment_label(enr), checklist_done=done,
            checklist_total=total, consents_ok=False, lodging=enr.lodging or "",
            waitlist_place=places.get(enr.id, 0) if enr.is_waitlisted else 0, notes=note_counts.get(enr.id, 0)))
    total_rows, pages = len(rows), 1
    if page is not None:
        pages = max(1, -(-total_rows // per_page))
        page = min(max(1, page), pages)
        rows = rows[(page - 1) * per_page:page * per_page]
    ids = [r.enrollment.id for r in rows]
    signed = preparation.all_signed_many(ids)
    statuses = clearance_status.statuses_of(ids, now)
    for r in rows:
        r.consents_ok = signed[r.enrollment.id]
        view = statuses[r.enrollment.id]
        if r.intake != "—":  # withdrawn / declined / expired offers keep dashes
            r.intake = INTAKE_LABEL.get(view.key, "Submitted")
            r.clearance, r.clearance_key = view.label, view.key
    if viewer is not None and rows:
        shared = clinical_access.shareable_conditions(viewer, [r.enrollment for r in rows], ctx=ctx, now=now)
        for r in rows:
            r.shareable_conditions = shared.get(r.enrollment.id, "")
    return RosterPage(rows=rows, page=page or 1, pages=pages, total=total_rows)


def roster_csv(cohort: Cohort) -> str:
    """CSV export of the roster: statuses and logistics only (no clinical data)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "email", "status", "intake", "clearance", "payment", "checklist", "consents signed",
                "lodging", "waitlist place"])
    for r in roster(cohort, status_filter="all"):
        w.writerow(safe_row([r.name, r.email, r.status, r.intake, r.clearance, r.payment,
                             f"{r.checklist_done}/{r.checklist_total}", "yes" if r.consents_ok else "no",
                             r.lodging, r.waitlist_place or ""]))
    return buf.getvalue()
