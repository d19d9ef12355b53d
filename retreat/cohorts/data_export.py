"""Applications and enrollments in a person's data export: each application with its history, the
preparation answers, the consents signed, the team's operational notes, and attendance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts import preparation
from retreat.cohorts.models import (
    Attendance,
    ChecklistItem,
    CohortSession,
    ConsentSignature,
    Enrollment,
    RosterNote,
)
from retreat.core import personal_data
from retreat.extensions import db


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def enrollments_of(person: User) -> list[Enrollment]:
    return list(db.session.scalars(select(Enrollment).where(Enrollment.participant_id == person.id)
                                   .order_by(Enrollment.id)))


def applications_section(person: User, **_) -> dict:
    out = []
    for enr in enrollments_of(person):
        checklist = db.session.scalars(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id)
                                       .order_by(ChecklistItem.id))
        signatures = db.session.scalars(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id)
                                        .order_by(ConsentSignature.id))
        notes = db.session.scalars(select(RosterNote).where(RosterNote.enrollment_id == enr.id)
                                   .order_by(RosterNote.created_at, RosterNote.id))
        out.append({
            "id": enr.id, "retreat": enr.cohort.retreat.title, "cohort": enr.cohort.title,
            "cohort_starts_at": _iso(enr.cohort.starts_at), "status": enr.status, "seat": enr.seat,
            "applied_at": _iso(enr.applied_at), "motivation": enr.motivation, "lodging": enr.lodging or None,
            "waitlist_position": enr.waitlist_position,
            "history": [{"at": _iso(t.at), "event": t.event, "from": t.from_status, "to": t.to_status,
                         "reason": t.reason} for t in enr.transitions],
            "preparation_answers": [{"task": c.key, "answer": preparation.display_answer(c), "completed_at": _iso(c.completed_at)}
                                    for c in checklist],
            "consents": [{"document": s.document.title, "version": s.document.version, "typed_name": s.typed_name,
                          "signed_at": _iso(s.signed_at), "document_sha256": s.document_sha256}
                         for s in signatures],
            "team_notes": [{"at": _iso(n.created_at), "by": n.author.name if n.author else None, "note": n.body}
                           for n in notes],
        })
    return {"enrollments": out}


def attendance_section(person: User, **_) -> dict:
    rows = db.session.execute(
        select(Attendance, CohortSession).join(CohortSession, CohortSession.id == Attendance.session_id)
        .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
        .where(Enrollment.participant_id == person.id).order_by(CohortSession.starts_at, Attendance.id))
    return {"attendance": [{"session": s.title, "kind": s.kind, "starts_at": _iso(s.starts_at), "status": a.status,
                            "recorded_at": _iso(a.recorded_at)} for a, s in rows]}


personal_data.register_section(
    "applications", applications_section, title="Applications, preparation and consents",
    covers=("enrollments", "enrollment_transitions", "checklist_items", "consent_signatures", "roster_notes"),
    order=30)
personal_data.register_section("attendance", attendance_section, title="Attendance", covers=("attendance",),
                               order=70)
