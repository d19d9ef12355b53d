"""Clearance as others see it, without clinical details: the status of an enrollment's clearance
(facilitators, finance, the participant's tracker, emails), the provider organisation's queues,
and the lookups of an enrollment's intake and requests.

Reads only: every change goes through ``retreat.clinical.clearance``; clinical fields are read
through ``retreat.clinical.access``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from retreat.clinical.models import (
    OPEN_STATUSES,
    ClearanceRequest,
    ClearanceStatus,
    Decision,
    Intake,
    IntakeStatus,
)
from retreat.cohorts import enrollment as pipeline
from retreat.cohorts.models import Enrollment
from retreat.extensions import db

DECISION_LABELS = {
    Decision.CLEARED: "Cleared",
    Decision.CLEARED_WITH_CONDITIONS: "Cleared with conditions",
    Decision.NOT_CLEARED: "Not cleared",
}


# --------------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------------


def get_intake(enr: Enrollment) -> Intake | None:
    return db.session.scalar(select(Intake).where(Intake.enrollment_id == enr.id))


def open_request(enr: Enrollment) -> ClearanceRequest | None:
    return db.session.scalar(select(ClearanceRequest).where(
        ClearanceRequest.enrollment_id == enr.id, ClearanceRequest.status.in_(OPEN_STATUSES)))


def latest_request(enr: Enrollment) -> ClearanceRequest | None:
    return db.session.scalar(select(ClearanceRequest).where(ClearanceRequest.enrollment_id == enr.id)
                             .order_by(ClearanceRequest.id.desc()).limit(1))


# --------------------------------------------------------------------------------------------
# Status and queues
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusView:
    """Clearance status without clinical details: safe for facilitators, finance and emails."""

    key: str
    label: str
    valid_until: datetime | None = None
    request: ClearanceRequest | None = None


def status_of(enr: Enrollment, now: datetime) -> StatusView:
    return _status_view(latest_request(enr), get_intake(enr), now)


def statuses_of(enrollment_ids: list[int], now: datetime) -> dict[int, StatusView]:
    """``status_of`` for many enrollments in two queries (rosters)."""
    ids = list(enrollment_ids)
    if not ids:
        return {}
    latest: dict[int, ClearanceRequest] = {}
    for req in db.session.scalars(select(ClearanceRequest).where(ClearanceRequest.enrollment_id.in_(ids))
                                  .order_by(ClearanceRequest.id)):
        latest[req.enrollment_id] = req  # the last one wins: the latest
    intakes = {i.enrollment_id: i for i in db.session.scalars(select(Intake).where(Intake.enrollment_id.in_(ids)))}
    return {i: _status_view(latest.get(i), intakes.get(i), now) for i in ids}


def _status_view(req: ClearanceRequest | None, intake: Intake | None, now: datetime) -> StatusView:
    if req is None:
        if intake is None or intake.status == IntakeStatus.ERASED:
            return StatusView("not_started", "Intake not started")
        return StatusView("intake_draft", "Intake in progress")
    if req.status == ClearanceStatus.PENDING:
        return StatusView("in_review", "Clearance lapsed — back in review" if req.renewal else "In medical review",
                          request=req)
    if req.status == ClearanceStatus.INFO_REQUESTED:
        return StatusView("info_requested", "Provider asked for more information", request=req)
    if req.status == ClearanceStatus.WITHDRAWN:
        return StatusView("withdrawn", "Withdrawn", request=req)
    if req.status == ClearanceStatus.LAPSED:
        return StatusView("lapsed", "Clearance lapsed", req.valid_until, req)
    decision = Decision(req.decision)
    if decision != Decision.NOT_CLEARED and req.valid_until is not None and req.valid_until <= now:
        return StatusView("expired", "Clearance expired", req.valid_until, req)
    return StatusView(decision.value, DECISION_LABELS[decision], req.valid_until, req)


# What the queue pages show of each request, loaded with it (not one query per row).
_QUEUE_LOADS = (joinedload(ClearanceRequest.enrollment).joinedload(Enrollment.participant),
                joinedload(ClearanceRequest.enrollment).joinedload(Enrollment.cohort),
                joinedload(ClearanceRequest.intake))


def queue(organization_id: int) -> list[ClearanceRequest]:
    """Open requests of an organisation, most urgent first."""
    return list(db.session.scalars(select(ClearanceRequest).join(Enrollment).where(
        ClearanceRequest.organization_id == organization_id, ClearanceRequest.status.in_(OPEN_STATUSES),
        Enrollment.status.not_in([s.value for s in pipeline.EXITS]))
        .options(*_QUEUE_LOADS).order_by(ClearanceRequest.due_at, ClearanceRequest.id)))


def recently_closed(organization_id: int, limit: int = 25) -> list[ClearanceRequest]:
    return list(db.session.scalars(select(ClearanceRequest).where(
        ClearanceRequest.organization_id == organization_id,
        ClearanceRequest.status.not_in(OPEN_STATUSES)).options(*_QUEUE_LOADS)
        .order_by(ClearanceRequest.updated_at.desc(), ClearanceRequest.id.desc()).limit(limit)))
