"""The check-ins count from each person's own discharge.

When the partner provider signs a participant off a dosing session (``signals.participant_discharged``,
sent by the dosing-day board), the discharge of the cohort's *last* dosing session is remembered as
a ``Discharge`` row and the person's follow-ups are re-synced: the 24 h and 72 h check-ins move to
discharge + 24 h / + 72 h (out of the participant's quiet hours, as always). A discharge from an
earlier dosing session moves nothing (the plan counts from the last one).

Idempotent: the same signal twice changes nothing the second time; a corrected discharge time
moves the check-ins again. A check-in whose email already went out stays as it was sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.cohorts.models import CohortSession, Enrollment, SessionKind
from retreat.core import locking, signals
from retreat.extensions import db
from retreat.integration import followups
from retreat.integration.followup_models import Discharge
from retreat.timeutil import ensure_utc, now_utc


def _last_dosing_session_id(cohort_id: int) -> int | None:
    return db.session.scalar(select(CohortSession.id).where(
        CohortSession.cohort_id == cohort_id, CohortSession.kind == SessionKind.DOSING.value)
        .order_by(CohortSession.ends_at.desc(), CohortSession.id.desc()).limit(1))


def record_discharge(enr: Enrollment, *, cohort_session_id: int, discharged_at: datetime,
                     now: datetime, actor=None) -> bool:
    """Remember the discharge and move the check-ins; False when nothing changed (a repeat, or not
    the cohort's last dosing session)."""
    if discharged_at.tzinfo is None:
        raise ValueError("discharged_at must be timezone-aware")
    at = ensure_utc(discharged_at)
    enr = locking.lock(Enrollment, enr.id)
    if cohort_session_id != _last_dosing_session_id(enr.cohort_id):
        return False
    row = db.session.scalar(select(Discharge).where(Discharge.enrollment_id == enr.id))
    if row is not None and row.cohort_session_id == cohort_session_id and ensure_utc(row.discharged_at) == at:
        return False
    if row is None:
        row = Discharge(enrollment_id=enr.id, created_at=now)
        db.session.add(row)
    row.cohort_session_id, row.discharged_at, row.updated_at = cohort_session_id, at, now
    db.session.flush()
    result = followups.sync_enrollment(enr, now)
    audit.record("integration.checkins_from_discharge", actor=actor, object_type="enrollment", object_id=enr.id,
                 details={"cohort_session_id": cohort_session_id, "moved": result.moved}, now=now)
    return True


@signals.participant_discharged.connect(order=10)
def _on_discharge(enr: Enrollment, *, cohort_session_id: int, discharged_at: datetime, actor=None,
                  now: datetime | None = None) -> None:
    record_discharge(enr, cohort_session_id=cohort_session_id, discharged_at=discharged_at,
                     now=now or now_utc(), actor=actor)
