"""The readiness gate for a dosing session: one rule, read by the facilitators' statuses, the
provider's reasons and the check-in refusal.

A person is ready for a dosing session when, on the session's local date: their clearance is valid
(not lapsed, decided under a valid licence: ``clearance_validity``), the current consents are signed,
the fasting instructions are acknowledged, a ride home is arranged and an emergency contact given
(the participant's preparation checklist). Each missing item is named; nothing clinical is in the
labels, so facilitators see them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from retreat.clinical import (
    clearance_validity,  # noqa: F401  (registers the clearance rule)
    staffing,
)
from retreat.cohorts import clearance_gate, preparation
from retreat.cohorts.models import ChecklistItem, CohortSession, Enrollment
from retreat.extensions import db

CHECKLIST_ITEMS = (
    ("fasting", "Fasting instructions not acknowledged"),
    ("ride_home", "No ride home arranged"),
    ("emergency_contact", "No emergency contact"),
)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    missing: tuple[str, ...]  # in words, non-clinical ("No ride home arranged")
    clearance_label: str  # "Cleared until ...", "Clearance lapsed ..."

    @property
    def summary(self) -> str:
        return "Ready" if self.ready else "Not ready: " + "; ".join(self.missing)


def readiness(session: CohortSession, enrollments: list[Enrollment]) -> dict[int, Readiness]:
    """For each enrollment id: ready or not for ``session``, and why (three queries for any number)."""
    if not enrollments:
        return {}
    ids = [e.id for e in enrollments]
    day = staffing.session_day(session)
    clearance = clearance_gate.verdicts(enrollments, day)
    signed = preparation.all_signed_many(ids)
    done = {(enr_id, key) for enr_id, key in db.session.execute(
        select(ChecklistItem.enrollment_id, ChecklistItem.key).where(
            ChecklistItem.enrollment_id.in_(ids), ChecklistItem.completed_at.is_not(None)))}
    out = {}
    for e in enrollments:
        missing = []
        verdict = clearance[e.id]
        if not verdict.ok:
            missing.append(verdict.label)
        if not signed.get(e.id):
            missing.append("Current consents not signed")
        missing += [label for key, label in CHECKLIST_ITEMS if (e.id, key) not in done]
        out[e.id] = Readiness(not missing, tuple(missing), verdict.label)
    return out
