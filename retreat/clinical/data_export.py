"""The clinical part of a person's data export, read through the audited clinical paths (each read
leaves its audit event, as a provider's view does): medical intake, screening and clearance,
safety alerts, dosing-day records, questionnaire scores, and who read their clinical record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from retreat.accounts.models import User
from retreat.audit.models import AuditEvent
from retreat.clinical import outcome_reports
from retreat.clinical.access import PROVIDER_SECTIONS, RequestRecord, read
from retreat.clinical.dosing_access import read_entries
from retreat.clinical.dosing_models import DosingRecord
from retreat.clinical.models import Intake, SafetyAlert
from retreat.cohorts.models import Enrollment
from retreat.core import personal_data
from retreat.core.context import RequestContext
from retreat.extensions import db


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def medical_section(person: User, *, ctx: RequestContext | None, now: datetime) -> dict:
    """Per application: the intake (decrypted through the audited read), screening, clearance
    requests with the messages exchanged, and safety alerts (status only)."""
    out = []
    for enr in db.session.scalars(select(Enrollment).where(Enrollment.participant_id == person.id)
                                  .order_by(Enrollment.id)):
        record = read(person, enr, sorted(PROVIDER_SECTIONS), ctx=ctx, now=now)
        alerts = db.session.scalars(select(SafetyAlert).where(SafetyAlert.enrollment_id == enr.id)
                                    .order_by(SafetyAlert.id))
        out.append({
            "enrollment_id": enr.id, "cohort": f"{enr.cohort.retreat.title} · {enr.cohort.title}",
            "medical_intake": None if record.intake is None else {
                "status": record.intake.status, "submitted_at": _iso(record.intake.submitted_at),
                "answers": record.answers, "screening_summary": record.screening},
            "clearance": [_request_export(rr) for rr in record.requests],
            "safety_alerts": [{"raised_at": _iso(a.raised_at), "status": a.status} for a in alerts],
        })
    return {"medical_records": out}


def _request_export(rr: RequestRecord) -> dict:
    r = rr.request
    return {
        "referred_to": r.organization.name, "referred_at": _iso(r.referred_at), "status": r.status,
        "decision": r.decision, "decided_at": _iso(r.decided_at),
        "decided_by": r.decided_by.name if r.decided_by else None,
        "licence": (f"{r.license_kind} {r.license_number} ({r.license_state})" if r.license_number else None),
        "valid_until": _iso(r.valid_until), "conditions": rr.conditions or None,
        "note_to_you": rr.participant_note or None, "rationale": rr.rationale or None,
        "messages": [{"at": _iso(m["at"]), "from": m["author_role"], "text": m["body"]} for m in rr.messages],
    }


def dosing_section(person: User, *, ctx: RequestContext | None, now: datetime) -> dict:
    """Dosing-day records (states, vitals, doses, checks, events, discharge), read through the
    audited dosing path."""
    records = db.session.scalars(select(DosingRecord).join(Enrollment, Enrollment.id == DosingRecord.enrollment_id)
                                 .where(Enrollment.participant_id == person.id).order_by(DosingRecord.id))
    return {"dosing_days": [{
        "session": rec.session.title, "session_starts_at": _iso(rec.session.starts_at),
        "cohort": rec.session.cohort.title, "state": rec.state, "checked_in_at": _iso(rec.checked_in_at),
        "dosed_at": _iso(rec.dosed_at), "discharged_at": _iso(rec.discharged_at),
        "entries": [{"kind": v.kind, "at": _iso(v.at), **v.body} for v in read_entries(person, rec, ctx=ctx, now=now)],
    } for rec in records]}


def outcomes_section(person: User, **_) -> dict:
    return {"outcome_scores": outcome_reports.export_rows(person)}


def access_log_section(person: User, **_) -> dict:
    """Who read (or was refused) their medical intake and dosing records, and when. Built after the
    other clinical sections, so it includes the reads this export itself made."""
    intake_ids = [str(i) for i in db.session.scalars(select(Intake.id).where(Intake.participant_id == person.id))]
    dosing_ids = [str(i) for i in db.session.scalars(
        select(DosingRecord.id).join(Enrollment, Enrollment.id == DosingRecord.enrollment_id)
        .where(Enrollment.participant_id == person.id))]
    if not intake_ids and not dosing_ids:
        return {"access_log": []}
    events = db.session.scalars(select(AuditEvent).where(or_(
        (AuditEvent.object_type == "intake") & AuditEvent.object_id.in_(intake_ids or ["-"]),
        (AuditEvent.object_type == "dosing_record") & AuditEvent.object_id.in_(dosing_ids or ["-"])))
        .order_by(AuditEvent.at, AuditEvent.id))
    return {"access_log": [{"at": _iso(e.at), "who": e.actor_email, "role": e.role, "action": e.action,
                            "record": e.object_type, "section": (e.details or {}).get("section")} for e in events]}


personal_data.register_section("medical", medical_section, title="Medical intake, screening and clearance",
                               covers=("intakes", "clearance_requests", "info_requests", "safety_alerts"), order=40)
personal_data.register_section("dosing_days", dosing_section, title="Dosing days",
                               covers=("dosing_records", "dosing_entries"), order=75)
personal_data.register_section("outcomes", outcomes_section, title="Questionnaire scores (PHQ-9, GAD-7)",
                               covers=("outcome_measures",), order=95)
personal_data.register_section("access_log", access_log_section, title="Who has read your medical record",
                               order=1000)
