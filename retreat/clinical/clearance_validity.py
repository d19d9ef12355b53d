"""The one rule "valid clearance on date D" (registered into ``retreat.cohorts.clearance_gate``).

An enrollment is validly cleared on D (the cohort's local date) when its latest clearance decision
is "cleared" or "cleared with conditions", it is not lapsed on D (its valid-until day, in the
cohort's zone, is D or later; no lapse recorded; no review reopened since), and it was decided
under a licence valid on the day of the decision (the cohort's local date of ``decided_at``, the
same day ``clearance.decide`` checks). Statuses only: no clinical detail leaves this module.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from retreat.clinical.models import OPEN_STATUSES, ClearanceRequest, ClearanceStatus, Decision
from retreat.cohorts import clearance_gate as gate
from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.timeutil import local_date

_CLEARED = (Decision.CLEARED.value, Decision.CLEARED_WITH_CONDITIONS.value)


def _day(d: date) -> str:
    return d.strftime("%a %d %b %Y")


def verdicts_on(enrollments: list[Enrollment], day: date) -> dict[int, gate.Verdict]:
    latest: dict[int, ClearanceRequest] = {}
    for req in db.session.scalars(select(ClearanceRequest).where(
            ClearanceRequest.enrollment_id.in_([e.id for e in enrollments])).order_by(ClearanceRequest.id)):
        latest[req.enrollment_id] = req  # the last one wins
    return {e.id: _verdict(latest.get(e.id), e.cohort.timezone, day) for e in enrollments}


def _verdict(req: ClearanceRequest | None, tz: str, day: date) -> gate.Verdict:
    if req is None or req.status == ClearanceStatus.WITHDRAWN:
        return gate.Verdict(gate.NOT_CLEARED, "Not cleared")
    if req.status in OPEN_STATUSES:
        if req.renewal:
            return gate.Verdict(gate.LAPSED, "Clearance lapsed — back in medical review")
        return gate.Verdict(gate.NOT_CLEARED, "Not cleared yet (in medical review)")
    if req.decision not in _CLEARED or req.valid_until is None:
        return gate.Verdict(gate.NOT_CLEARED, "Not cleared")
    valid_day = local_date(req.valid_until, tz)
    if req.status == ClearanceStatus.LAPSED or valid_day < day:
        return gate.Verdict(gate.LAPSED, f"Clearance lapsed (valid until {_day(valid_day)})")
    if req.license_expires_on is None or local_date(req.decided_at, tz) > req.license_expires_on:
        return gate.Verdict(gate.LICENCE, "Not validly cleared (decided under an expired licence)")
    return gate.Verdict(gate.VALID, f"Cleared until {_day(valid_day)}")


gate.register(verdicts_on)
