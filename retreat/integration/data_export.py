"""Integration in a person's data export: circle replies, check-ins (scheduled, answered, the alerts
they raised, discharge from follow-ups) and their journal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts.models import CohortSession, Enrollment
from retreat.core import personal_data
from retreat.extensions import db
from retreat.integration import checkins, followups, journal
from retreat.integration.followup_models import Discharge, FollowUp, IntegrationAlert
from retreat.integration.models import CircleRsvp


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _of(model, person: User):
    return db.session.scalars(select(model).join(Enrollment, Enrollment.id == model.enrollment_id)
                              .where(Enrollment.participant_id == person.id).order_by(model.enrollment_id, model.id))


def circles_section(person: User, **_) -> dict:
    rows = db.session.execute(
        select(CircleRsvp, CohortSession).join(CohortSession, CohortSession.id == CircleRsvp.session_id)
        .join(Enrollment, Enrollment.id == CircleRsvp.enrollment_id)
        .where(Enrollment.participant_id == person.id).order_by(CohortSession.starts_at, CircleRsvp.id))
    return {"integration_circles": [{"circle": s.title, "starts_at": _iso(s.starts_at), "reply": r.status,
                                     "note": r.note or None, "answered_at": _iso(r.answered_at)} for r, s in rows]}


def checkins_section(person: User, **_) -> dict:
    return {
        "check_ins": checkins.export_rows(person),
        "check_ins_scheduled": [{"enrollment_id": f.enrollment_id, "check_in": followups.KIND_LABELS.get(f.kind, f.kind),
                                 "due_at": _iso(f.due_at), "status": f.status, "sent_at": _iso(f.sent_at),
                                 "answered_at": _iso(f.answered_at)} for f in _of(FollowUp, person)],
        "support_alerts": [{"enrollment_id": a.enrollment_id, "reason": a.reason, "raised_at": _iso(a.created_at),
                            "acknowledged_at": _iso(a.acknowledged_at)} for a in _of(IntegrationAlert, person)],
        "follow_up_discharges": [{"enrollment_id": d.enrollment_id, "discharged_at": _iso(d.discharged_at)}
                                 for d in _of(Discharge, person)],
    }


def journal_section(person: User, **_) -> dict:
    return {"journal_entries": journal.export_rows(person)}


personal_data.register_section("circles", circles_section, title="Integration circles", covers=("circle_rsvps",),
                               order=80)
personal_data.register_section(
    "check_ins", checkins_section, title="Check-ins",
    covers=("follow_ups", "checkin_responses", "integration_alerts", "followup_discharges"), order=85)
personal_data.register_section("journal", journal_section, title="Your integration journal",
                               covers=("journal_entries",), order=90)
