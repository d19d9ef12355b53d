"""Clearance expiry: a clearance that expires before the retreat goes back into review.

The scheduler runs ``sweep_expired_clearances`` (job ``clearance.expire``): the decided request
becomes ``lapsed``, a renewal request goes to the same organisation (``clearance.refer``) and the
enrollment returns to clearance_pending, to resume where it was once the renewal is decided. Open
requests of closed applications are withdrawn on the way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.clinical import clearance
from retreat.clinical.models import OPEN_STATUSES, ClearanceRequest, ClearanceStatus, Decision
from retreat.cohorts import enrollment as pipeline
from retreat.cohorts.models import Cohort, Enrollment
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core import jobs, locking
from retreat.extensions import db
from retreat.messaging import outbox

# Enrollment statuses whose clearance can lapse back into review.
CLEARED_STAGES = frozenset({S.CLEARED, S.DEPOSIT_PAID, S.BALANCE_PAID})


def sweep_expired_clearances(now: datetime) -> int:
    """Scheduler job (see the module's docstring). The caller commits once. Returns how many
    clearances lapsed."""
    lapsing = list(db.session.scalars(select(ClearanceRequest).join(Enrollment).join(Cohort).where(
        ClearanceRequest.status == ClearanceStatus.DECIDED.value,
        ClearanceRequest.decision.in_([Decision.CLEARED.value, Decision.CLEARED_WITH_CONDITIONS.value]),
        ClearanceRequest.valid_until <= now, ClearanceRequest.valid_until < Cohort.starts_at,
        Enrollment.status.in_([s.value for s in CLEARED_STAGES])).order_by(ClearanceRequest.id)))
    closing = list(db.session.scalars(select(ClearanceRequest).join(Enrollment).where(
        ClearanceRequest.status.in_(OPEN_STATUSES), Enrollment.status.in_([s.value for s in pipeline.EXITS]))))
    # Every row of the sweep is locked before any change, in the lock order: enrollments, requests.
    locking.lock_many(Enrollment, [req.enrollment_id for req in lapsing])
    locking.lock_many(ClearanceRequest, [req.id for req in lapsing + closing])
    lapsed = sum(_lapse(req, now=now) for req in lapsing)
    for req in closing:
        clearance.withdraw(req, now=now)
    return lapsed


def _lapse(req: ClearanceRequest, *, now: datetime) -> bool:
    """A locked decided request whose clearance expired: lapsed, and a renewal request referred."""
    enr = req.enrollment
    if req.status != ClearanceStatus.DECIDED or S(enr.status) not in CLEARED_STAGES:
        return False
    req.status = ClearanceStatus.LAPSED.value
    req.version += 1
    req.updated_at = now
    resume = enr.status if enr.status in (S.DEPOSIT_PAID, S.BALANCE_PAID) else None
    pipeline.clearance_lapsed(enr, now=now, actor=None)
    cohort = db.session.get(Cohort, enr.cohort_id)
    clearance.refer(enr, req.intake, cohort, now=now, actor=None, ctx=None, renewal=True, resume_status=resume)
    person = enr.participant
    outbox.enqueue(template="clearance_renewal", dedupe_key=f"clearance-{req.id}-lapsed", to_user=person,
                   group_key=f"clearance:{req.id}", now=now,
                   context={"participant_name": person.name, "url": clearance.participant_url(enr)})
    audit.record("clearance.lapsed", object_type="clearance_request", object_id=req.id,
                 details={"enrollment_id": enr.id}, now=now)
    return True


jobs.register("clearance.expire", sweep_expired_clearances, seconds=300)
