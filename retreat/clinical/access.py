"""THE one read path for clinical data.

Every decryption of intake answers, screening flags and scores, decision conditions, rationales,
notes and the information-request thread happens here, after an access check, and writes one
audit event per section read: who, whose record, which section, when, from where (ip, request id).

Who may read what (minimum necessary):

    participant        their own record, every section
    provider           records referred to their own organisation: every section
    facilitator        only conditions a provider marked as shareable with the retreat team
    finance            nothing
    admin              nothing, except through ``break_glass`` with a written reason (highlighted)

A refused read raises ``AccessDenied`` (a 404 for the web: ids of others' records are not
confirmed) after recording a ``clinical.denied`` audit event; views commit that event.
Writing (sealing) is open to the services; only reading is guarded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.clinical.models import ClearanceRequest, Intake
from retreat.cohorts.models import Enrollment
from retreat.consults.models import Consultation
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field
from retreat.core.errors import NotFound, ValidationFailed
from retreat.extensions import db

ANSWERS = "answers"
SCREENING = "screening"
DECISION = "decision"
THREAD = "thread"
SHAREABLE = "shareable_conditions"
CONSULT_SAFETY = "consult_safety"  # the participant's consults: flagged, matched pre-screen answers, outcome
PROVIDER_SECTIONS = frozenset({ANSWERS, SCREENING, DECISION, THREAD})
ALL_SECTIONS = PROVIDER_SECTIONS | {SHAREABLE, CONSULT_SAFETY}
BREAK_GLASS_REASON_MIN = 20

class AccessDenied(NotFound):
    """Not yours to read. Answered as 404 so that ids of other people's records are not confirmed."""


# --------------------------------------------------------------------------------------------
# Sealing (write side)
# --------------------------------------------------------------------------------------------


def seal_text(value: str | None) -> str | None:
    value = (value or "").strip()
    return encrypt_field(value) if value else None


def seal_json(value) -> str:
    return encrypt_field(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _open_text(token: str | None) -> str:
    return decrypt_field(token) or "" if token else ""


def _open_json(token: str | None):
    return json.loads(decrypt_field(token)) if token else None


# --------------------------------------------------------------------------------------------
# Access rules
# --------------------------------------------------------------------------------------------


def referred_organization_ids(enrollment_id: int) -> set[int]:
    return set(db.session.scalars(select(ClearanceRequest.organization_id).where(
        ClearanceRequest.enrollment_id == enrollment_id)))


def basis_for(actor: User | None, enrollment: Enrollment, section: str) -> str | None:
    """Why ``actor`` may read ``section`` of ``enrollment``'s record, or None when they may not."""
    if actor is None or not actor.is_active:
        return None
    if actor.role == Role.PARTICIPANT:
        return "owner" if actor.id == enrollment.participant_id else None
    if actor.role == Role.PROVIDER:
        if section in PROVIDER_SECTIONS | {CONSULT_SAFETY} and actor.provider_organization_id in referred_organization_ids(
                enrollment.id):
            return "provider"
        return None
    if actor.role == Role.FACILITATOR:
        return "team" if section == SHAREABLE else None
    return None  # finance never; admin only through break_glass


def _audit_read(actor: User, enrollment: Enrollment, intake_id: int | None, section: str, basis: str, *,
                ctx: RequestContext | None, now: datetime, action: str = "clinical.read",
                extra: dict | None = None) -> None:
    details = {"participant_id": enrollment.participant_id, "enrollment_id": enrollment.id,
               "section": section, "basis": basis}
    details.update(extra or {})
    audit.record(action, actor=actor, object_type="intake", object_id=intake_id, details=details, ctx=ctx, now=now)


def refuse(actor: User | None, enrollment_id: int | None, section: str, *, ctx: RequestContext | None,
           now: datetime) -> AccessDenied:
    """Record a refused read (``clinical.denied``) and return the error to raise."""
    audit.record("clinical.denied", actor=actor, object_type="enrollment", object_id=enrollment_id,
                 details={"section": section}, ctx=ctx, now=now)
    return AccessDenied("We could not find that record.")


def _intake_for(enrollment: Enrollment) -> Intake | None:
    return db.session.scalar(select(Intake).where(Intake.enrollment_id == enrollment.id))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    request: ClearanceRequest
    conditions: str = ""
    rationale: str = ""
    participant_note: str = ""
    messages: list[dict] = field(default_factory=list)


@dataclass
class ConsultSafety:
    """What a provider needs to know about one consult: no free text (reason, notes) at all."""
    consult_id: int
    start_at: datetime
    status: str
    recommended_cohort: str | None
    flagged: bool
    matched: list[str]  # the pre-screen questions answered yes / not sure (contraindications)


@dataclass
class ClinicalRecord:
    enrollment: Enrollment
    intake: Intake | None
    basis: str
    answers: dict | None = None
    screening: dict | None = None
    requests: list[RequestRecord] = field(default_factory=list)
    consults: list[ConsultSafety] = field(default_factory=list)


def read(actor: User | None, enrollment: Enrollment, sections: Iterable[str], *, ctx: RequestContext | None,
         now: datetime, _basis: str | None = None) -> ClinicalRecord:
    """Decrypt the asked sections of one enrollment's record for ``actor``; audit each section."""
    sections = list(dict.fromkeys(sections))
    unknown = set(sections) - ALL_SECTIONS
    if unknown:
        raise ValueError(f"unknown clinical sections: {sorted(unknown)}")
    bases = {}
    for section in sections:
        basis = _basis or basis_for(actor, enrollment, section)
        if basis is None:
            raise refuse(actor, enrollment.id, section, ctx=ctx, now=now)
        bases[section] = basis
    intake = _intake_for(enrollment)
    record = ClinicalRecord(enrollment=enrollment, intake=intake, basis=next(iter(bases.values()), "none"))
    requests = list(db.session.scalars(select(ClearanceRequest).where(
        ClearanceRequest.enrollment_id == enrollment.id).order_by(ClearanceRequest.id)))
    if actor is not None and actor.role == Role.PROVIDER and _basis is None:
        requests = [r for r in requests if r.organization_id == actor.provider_organization_id]
    record.requests = [RequestRecord(r) for r in requests]
    for section in sections:
        if section == ANSWERS and intake is not None:
            record.answers = _open_json(intake.answers_enc) or {}
        elif section == SCREENING and intake is not None:
            record.screening = _open_json(intake.screening_enc)
        elif section == DECISION:
            for rr in record.requests:
                rr.conditions = _open_text(rr.request.conditions_enc)
                rr.rationale = _open_text(rr.request.rationale_enc)
                rr.participant_note = _open_text(rr.request.participant_note_enc)
        elif section == THREAD:
            for rr in record.requests:
                rr.messages = [{"id": m.id, "at": m.created_at, "author_role": m.author_role,
                                "author_name": m.author.name if m.author else "",
                                "body": _open_text(m.body_enc)} for m in rr.request.messages]
        elif section == SHAREABLE:
            for rr in record.requests:
                if rr.request.conditions_shareable:
                    rr.conditions = _open_text(rr.request.conditions_enc)
        elif section == CONSULT_SAFETY:
            record.consults = _consult_safety(enrollment.participant_id)
            _audit_read(actor, enrollment, intake.id if intake else None, section, bases[section], ctx=ctx, now=now,
                        extra={"consultation_ids": [c.consult_id for c in record.consults]})
            continue
        _audit_read(actor, enrollment, intake.id if intake else None, section, bases[section], ctx=ctx, now=now)
    return record


def _consult_safety(participant_id: int) -> list[ConsultSafety]:
    from retreat.consults.prescreen import FLAGGING_ANSWERS, PRESCREEN_QUESTIONS

    consults = db.session.scalars(select(Consultation).where(Consultation.participant_id == participant_id)
                                  .order_by(Consultation.start_at.desc(), Consultation.id.desc()))
    out = []
    for c in consults:
        answers = _open_json(c.answers_encrypted) or {}
        out.append(ConsultSafety(
            consult_id=c.id, start_at=c.start_at, status=c.status, recommended_cohort=c.recommended_cohort,
            flagged=c.flagged, matched=[q for k, q in PRESCREEN_QUESTIONS if answers.get(k) in FLAGGING_ANSWERS]))
    return out


def shareable_conditions(actor: User, enrollments: Iterable[Enrollment], *, ctx: RequestContext | None,
                         now: datetime) -> dict[int, str]:
    """For the retreat team: conditions marked shareable on each enrollment's current clearance.

    Only enrollments that have such conditions are decrypted (and audited).
    """
    out: dict[int, str] = {}
    enrollments = list(enrollments)
    decided = current_decisions([e.id for e in enrollments])
    for enr in enrollments:
        latest = decided.get(enr.id)
        if latest is None or not latest.conditions_shareable or not latest.conditions_enc:
            continue
        if basis_for(actor, enr, SHAREABLE) is None:
            raise refuse(actor, enr.id, SHAREABLE, ctx=ctx, now=now)
        out[enr.id] = _open_text(latest.conditions_enc)
        _audit_read(actor, enr, latest.intake_id, SHAREABLE, "team", ctx=ctx, now=now,
                    extra={"clearance_request_id": latest.id})
    return out


def current_decision(enrollment_id: int) -> ClearanceRequest | None:
    """The most recent decided request of an enrollment (not clinical in itself)."""
    return db.session.scalar(select(ClearanceRequest).where(
        ClearanceRequest.enrollment_id == enrollment_id, ClearanceRequest.decision.is_not(None))
        .order_by(ClearanceRequest.decided_at.desc(), ClearanceRequest.id.desc()).limit(1))


def current_decisions(enrollment_ids: list[int]) -> dict[int, ClearanceRequest]:
    """``current_decision`` for many enrollments in one query."""
    out: dict[int, ClearanceRequest] = {}
    if not enrollment_ids:
        return out
    for req in db.session.scalars(select(ClearanceRequest).where(
            ClearanceRequest.enrollment_id.in_(list(enrollment_ids)), ClearanceRequest.decision.is_not(None))
            .order_by(ClearanceRequest.decided_at, ClearanceRequest.id)):
        out[req.enrollment_id] = req  # ordered oldest first: the last one wins
    return out


def break_glass(actor: User, enrollment: Enrollment, reason: str, *, ctx: RequestContext | None,
                now: datetime) -> ClinicalRecord:
    """An admin reads a record in an emergency. Needs a written reason; highlighted in the audit log."""
    reason = " ".join((reason or "").split())
    if actor is None or actor.role != Role.ADMIN or not actor.is_active:
        raise refuse(actor, enrollment.id, "break_glass", ctx=ctx, now=now)
    if len(reason) < BREAK_GLASS_REASON_MIN:
        raise ValidationFailed(f"Explain why you need to read this record (at least {BREAK_GLASS_REASON_MIN} "
                               "characters). The reason is kept in the audit log.", field="reason")
    if len(reason) > 1000:
        raise ValidationFailed("Please keep the reason under 1000 characters.", field="reason")
    intake = _intake_for(enrollment)
    audit.record("clinical.break_glass", actor=actor, object_type="intake", object_id=intake.id if intake else None,
                 details={"participant_id": enrollment.participant_id, "enrollment_id": enrollment.id,
                          "reason": reason, "highlight": True}, ctx=ctx, now=now)
    return read(actor, enrollment, sorted(PROVIDER_SECTIONS), ctx=ctx, now=now, _basis="break_glass")
