"""A participant's own data, exported for them: everything held about them, as JSON.

The clinical sections are read through the one audited path (``retreat.clinical.access.read``),
so the export itself leaves the same audit events as a provider's view, plus ``privacy.exported``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import User
from retreat.audit.models import AuditEvent
from retreat.clinical import outcome_reports
from retreat.clinical.access import PROVIDER_SECTIONS, RequestRecord, read, refuse
from retreat.clinical.dosing_access import read_entries
from retreat.clinical.dosing_models import DosingRecord
from retreat.clinical.models import SafetyAlert
from retreat.cohorts.models import ChecklistItem, ConsentSignature, Enrollment
from retreat.consults import outcomes as consult_outcomes
from retreat.core.context import RequestContext
from retreat.extensions import db
from retreat.integration import checkins, journal
from retreat.payments.models import DiscountRedemption
from retreat.privacy import deletion_review


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def export_participant_data(actor: User, participant: User, *, ctx: RequestContext | None,
                            now: datetime) -> dict:
    """Everything held about ``participant``, for them only (JSON-able)."""
    if actor is None or actor.id != participant.id:
        raise refuse(actor, None, "export", ctx=ctx, now=now)
    enrollments = list(db.session.scalars(select(Enrollment).where(
        Enrollment.participant_id == participant.id).order_by(Enrollment.id)))
    out_enrollments = []
    intake_ids = []
    for enr in enrollments:
        record = read(actor, enr, sorted(PROVIDER_SECTIONS), ctx=ctx, now=now)
        if record.intake is not None:
            intake_ids.append(record.intake.id)
        checklist = db.session.scalars(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id)
                                       .order_by(ChecklistItem.id))
        signatures = db.session.scalars(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id)
                                        .order_by(ConsentSignature.id))
        alerts = db.session.scalars(select(SafetyAlert).where(SafetyAlert.enrollment_id == enr.id)
                                    .order_by(SafetyAlert.id))
        out_enrollments.append({
            "id": enr.id,
            "retreat": enr.cohort.retreat.title,
            "cohort": enr.cohort.title,
            "cohort_starts_at": _iso(enr.cohort.starts_at),
            "status": enr.status,
            "applied_at": _iso(enr.applied_at),
            "motivation": enr.motivation,
            "history": [{"at": _iso(t.at), "event": t.event, "from": t.from_status, "to": t.to_status,
                         "reason": t.reason} for t in enr.transitions],
            "checklist": [{"task": c.key, "answer": c.answer, "completed_at": _iso(c.completed_at)}
                          for c in checklist],
            "consents": [{"document": s.document.title, "version": s.document.version, "typed_name": s.typed_name,
                          "signed_at": _iso(s.signed_at), "document_sha256": s.document_sha256}
                         for s in signatures],
            "medical_intake": None if record.intake is None else {
                "status": record.intake.status,
                "submitted_at": _iso(record.intake.submitted_at),
                "answers": record.answers,
                "screening_summary": record.screening,
            },
            "clearance": [_request_export(rr) for rr in record.requests],
            "safety_alerts": [{"raised_at": _iso(a.raised_at), "status": a.status} for a in alerts],
            "discounts": [{"code": r.code.code, "status": r.status, "amount_minor": r.amount_minor,
                           "currency": r.currency, "evidence": r.evidence}
                          for r in db.session.scalars(select(DiscountRedemption).where(
                              DiscountRedemption.enrollment_id == enr.id).order_by(DiscountRedemption.id))],
        })
    access_log = []
    if intake_ids:
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.object_type == "intake", AuditEvent.object_id.in_([str(i) for i in intake_ids]))
            .order_by(AuditEvent.at, AuditEvent.id))
        access_log = [{"at": _iso(e.at), "who": e.actor_email, "role": e.role, "action": e.action,
                       "section": (e.details or {}).get("section")} for e in events]
    audit.record("privacy.exported", actor=actor, object_type="user", object_id=participant.id, ctx=ctx, now=now)
    return {
        "generated_at": _iso(now),
        "account": {"name": participant.name, "email": participant.email, "time_zone": participant.tz,
                    "phone": participant.phone, "created_at": _iso(participant.created_at),
                    "email_verified_at": _iso(participant.email_verified_at)},
        "enrollments": out_enrollments,
        "consultations": _consult_export(participant),
        "access_log": access_log,
        "deletion_requests": deletion_review.export_rows(participant),
        **_integration_export(participant),
        **dosing_days_export(actor, participant, ctx=ctx, now=now),
    }


def dosing_days_export(actor: User, participant: User, *, ctx: RequestContext | None, now: datetime) -> dict:
    """The participant's dosing-day records (states, vitals, doses, checks, events, discharge), read
    through the audited dosing path."""
    records = db.session.scalars(select(DosingRecord).join(Enrollment, Enrollment.id == DosingRecord.enrollment_id)
                                 .where(Enrollment.participant_id == participant.id).order_by(DosingRecord.id))
    days = []
    for rec in records:
        days.append({
            "session": rec.session.title, "session_starts_at": _iso(rec.session.starts_at),
            "cohort": rec.session.cohort.title, "state": rec.state,
            "checked_in_at": _iso(rec.checked_in_at), "dosed_at": _iso(rec.dosed_at),
            "discharged_at": _iso(rec.discharged_at),
            "entries": [{"kind": v.kind, "at": _iso(v.at), **v.body}
                        for v in read_entries(actor, rec, ctx=ctx, now=now)],
        })
    return {"dosing_days": days}


def _integration_export(participant: User) -> dict:
    """The participant's journal entries and outcome scores (their own export only)."""
    return {"journal_entries": journal.export_rows(participant),
            "outcome_scores": outcome_reports.export_rows(participant),
            "check_ins": checkins.export_rows(participant)}


def _consult_export(participant: User) -> list[dict]:
    """The consults in their history: booked signed in, or confirmed by them ("this was me")."""
    return [{"start": _iso(c.start_at), "status": c.status, "facilitator": c.facilitator.name,
             "booked_via": c.booked_via, "joined_history_at": _iso(c.owner_confirmed_at),
             "recommended_cohort": c.recommended_cohort}
            for c in consult_outcomes.consults_for_participant(participant)]


def _request_export(rr: RequestRecord) -> dict:
    r = rr.request
    return {
        "referred_to": r.organization.name,
        "referred_at": _iso(r.referred_at),
        "status": r.status,
        "decision": r.decision,
        "decided_at": _iso(r.decided_at),
        "decided_by": r.decided_by.name if r.decided_by else None,
        "licence": (f"{r.license_kind} {r.license_number} ({r.license_state})" if r.license_number else None),
        "valid_until": _iso(r.valid_until),
        "conditions": rr.conditions or None,
        "note_to_you": rr.participant_note or None,
        "rationale": rr.rationale or None,
        "messages": [{"at": _iso(m["at"]), "from": m["author_role"], "text": m["body"]} for m in rr.messages],
    }


