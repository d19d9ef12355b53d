"""Clearance requests over the API, for providers only (bearer token). Reads are audited."""

from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint

from retreat.accounts.models import Role
from retreat.blueprints.api.schemas import ClearanceDetailSchema, ClearanceListSchema, ErrorSchema
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance_status
from retreat.clinical.models import ClearanceRequest
from retreat.timeutil import now_utc
from retreat.web.clinical import org_request_or_404, read_or_404
from retreat.web.security import acting_user, api_roles_required, request_context

blp = Blueprint("api_clearance", __name__, url_prefix="/api/v1",
                description="Clearance requests referred to the caller's provider organisation")


def _summary(req: ClearanceRequest) -> dict:
    enr = req.enrollment
    return {"id": req.id, "status": req.status, "renewal": req.renewal, "referred_at": req.referred_at.isoformat(),
            "due_at": req.due_at.isoformat(), "cohort": enr.cohort.title, "cohort_starts_at": enr.cohort.starts_at.isoformat(),
            "participant": enr.participant.name, "screening_level": req.intake.screening_level,
            "safety_concern": req.intake.safety_concern, "decision": req.decision,
            "valid_until": req.valid_until.isoformat() if req.valid_until else None, "version": req.version}


@blp.route("/clearance-requests")
@api_roles_required(Role.PROVIDER)
@blp.response(200, ClearanceListSchema)  # documents the jsonify answer
def list_requests():
    """Open clearance requests of my organisation, most urgent first."""
    user = acting_user()
    return jsonify(items=[_summary(r) for r in clearance_status.queue(user.provider_organization_id)])


@blp.route("/clearance-requests/<int:request_id>")
@api_roles_required(Role.PROVIDER)
@blp.response(200, ClearanceDetailSchema)  # documents the jsonify answer
@blp.alt_response(404, schema=ErrorSchema, description="Not a request referred to your organisation")
def get_request(request_id: int):
    """One request with the full intake, flags, scores, decision and thread (audited read)."""
    user = acting_user()
    now = now_utc()
    req = org_request_or_404(request_id)
    record = read_or_404(clinical_access.read, user, req.enrollment,
                         [clinical_access.ANSWERS, clinical_access.SCREENING, clinical_access.DECISION,
                          clinical_access.THREAD], ctx=request_context(), now=now)
    this = next(r for r in record.requests if r.request.id == req.id)
    return jsonify(**_summary(req), answers=record.answers, screening=record.screening,
                   conditions=this.conditions or None, conditions_shareable=req.conditions_shareable,
                   rationale=this.rationale or None, note_to_participant=this.participant_note or None,
                   messages=[{"at": m["at"].isoformat(), "from": m["author_role"], "text": m["body"]}
                             for m in this.messages])
