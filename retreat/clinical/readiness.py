"""The readiness gate for a dosing session: one rule, read by the facilitators' statuses, the
provider's reasons and the check-in refusal.

A person is ready for a dosing session when, on the session's local date: their clearance is valid
(not lapsed, decided under a valid licence: ``clearance_validity``), the current consents are signed,
the fasting instructions are acknowledged, a ride home is arranged with a named driver (name and
phone: ``preparation.RideHome``; an older free-text answer names nobody the provider can check at
pickup, so it does not count) and an emergency contact given (the participant's preparation
checklist). Each missing item is named; nothing clinical is in the labels, so facilitators see them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, select

from retreat.clinical import (
    clearance_validity,  # noqa: F401  (registers the clearance rule)
    staffing,
)
from retreat.cohorts import clearance_gate, preparation
from retreat.cohorts.models import ChecklistItem, CohortSession, Enrollment
from retreat.core.crypto import decrypt_field
from retreat.extensions import db

CHECKLIST_ITEMS = (
    ("fasting", "Fasting instructions not acknowledged"),
    ("ride_home", "No ride home arranged"),
    ("emergency_contact", "No emergency contact"),
)
DRIVER_NOT_NAMED = "Ride home: driver's name and phone needed"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    missing: tuple[str, ...]  # in words, non-clinical ("No ride home arranged")
    clearance_label: str  # "Cleared until ...", "Clearance lapsed ..."
    # the ride home as given (a named driver, or an older free text); logistics, not clinical
    ride_home: preparation.RideHome | None = field(default=None, compare=False)

    @property
    def driver(self) -> str:
        """The named driver in words ("Sam Rivera, +1 303-555-0199"), "" when none is named."""
        return self.ride_home.display if self.ride_home and self.ride_home.named else ""

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
    done: set[tuple[int, str]] = set()
    rides: dict[int, preparation.RideHome] = {}
    for enr_id, key, answer_enc in db.session.execute(
            select(ChecklistItem.enrollment_id, ChecklistItem.key,
                   # only the ride home's answer is read (and decrypted); the others only count as done
                   case((ChecklistItem.key == "ride_home", ChecklistItem.answer_enc), else_=None)).where(
                ChecklistItem.enrollment_id.in_(ids), ChecklistItem.completed_at.is_not(None))):
        done.add((enr_id, key))
        if key == "ride_home":
            ride = preparation.ride_home_from(decrypt_field(answer_enc))
            if ride is not None:
                rides[enr_id] = ride
    out = {}
    for e in enrollments:
        missing = []
        verdict = clearance[e.id]
        if not verdict.ok:
            missing.append(verdict.label)
        if not signed.get(e.id):
            missing.append("Current consents not signed")
        for key, label in CHECKLIST_ITEMS:
            if (e.id, key) not in done:
                missing.append(label)
            elif key == "ride_home" and not (e.id in rides and rides[e.id].named):
                missing.append(DRIVER_NOT_NAMED)
        out[e.id] = Readiness(not missing, tuple(missing), verdict.label, rides.get(e.id))
    return out
