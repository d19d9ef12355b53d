"""One demo participant's way through a cohort, step by step, through the rules real use goes
through: apply (``cohorts.enrollment``), the medical intake (``clinical.clearance.submit``, which
refers it to the partner provider), the provider's decision under their licence
(``clinical.clearance.decide``), consents and preparation (``cohorts.preparation``), payments
(``demo_money.Payer``), attendance and completion (``cohorts.enrollment``). Each step takes the
moment it happens (``at``), so a past cohort is walked through at the times it really ran.
"""

from __future__ import annotations

from datetime import datetime

from retreat.accounts.models import User
from retreat.clinical import clearance, screening
from retreat.clinical.models import ClearanceRequest
from retreat.cohorts import enrollment, preparation
from retreat.cohorts.models import Cohort, Enrollment
from retreat.extensions import db

PHQ9_KEYS, GAD7_KEYS = screening.PHQ9_KEYS, screening.GAD7_KEYS


def new_request() -> None:
    """Each step is a request of its own: commit what came before, which ends its row locks, so the
    step takes its own in ``core.locking.LOCK_ORDER`` as a real request does."""
    db.session.commit()


def spread(total: int, count: int, *, last_zero: bool = False) -> list[int]:
    """``total`` spread over ``count`` questionnaire items of 0-3 (the PHQ-9's item 9, thoughts of
    self-harm, kept at 0 with ``last_zero``)."""
    slots = count - 1 if last_zero else count
    values = [0] * count
    for i in range(min(total, slots * 3)):
        values[i % slots] += 1
    return values


def intake_answers(person: User, *, phq9: int = 6, gad7: int = 5) -> dict:
    """A complete intake with nothing that needs more than the usual clearance."""
    answers = {q.key: "none" for q in screening.TEXT_QUESTIONS}
    answers.update(substance_use="A glass of wine at weekends; no other substances.",
                   current_care="", condition_details="",
                   emergency_contact_name="Jordan Lee (partner)", emergency_contact_phone="+1 303 555 0142",
                   bp_systolic=118, bp_diastolic=76, height_cm=172, weight_kg=70)
    answers.update({c.key: False for c in screening.CONDITIONS})
    answers.update(zip(PHQ9_KEYS, spread(phq9, 9, last_zero=True), strict=True))
    answers.update(zip(GAD7_KEYS, spread(gad7, 7), strict=True))
    return answers


def apply(cohort: Cohort, person: User, *, at: datetime, motivation: str = "") -> Enrollment:
    new_request()
    return enrollment.apply(cohort, person, now=at, motivation=motivation)


def submit_intake(enr: Enrollment, *, at: datetime, phq9: int = 6, gad7: int = 5) -> ClearanceRequest:
    new_request()
    person = enr.participant
    return clearance.submit(enr, person, intake_answers(person, phq9=phq9, gad7=gad7), now=at).request


def clear(req: ClearanceRequest, provider: User, *, at: datetime) -> ClearanceRequest:
    new_request()
    return clearance.decide(req, provider, decision="cleared", attestation_name=provider.name,
                            expected_version=req.version, now=at,
                            participant_note="You are cleared to take part. See you at the retreat.")


def sign_consents(enr: Enrollment, *, at: datetime) -> None:
    new_request()
    person = enr.participant
    for doc in preparation.current_consent_documents():
        preparation.sign_consent(enr, doc, signer=person, typed_name=person.name, now=at)


def prepare(enr: Enrollment, *, at: datetime, ride_home: tuple[str, str] | None = None,
            intention: bool = True) -> None:
    """The preparation checklist a participant does before the retreat (no ride home unless given:
    the named driver's name and phone)."""
    new_request()
    if intention:
        preparation.complete(enr, "intention", answer="To meet my parts with curiosity.", now=at)
    preparation.complete(enr, "emergency_contact", answer="Jordan Lee (partner), +1 303 555 0142", now=at)
    preparation.complete(enr, "fasting", acknowledged=True, now=at)
    if ride_home:
        preparation.complete(enr, "ride_home", driver_name=ride_home[0], driver_phone=ride_home[1], now=at)


def attend_and_complete(enr: Enrollment, *, attended_at: datetime, completed_at: datetime, by: User) -> None:
    new_request()
    enrollment.mark_attended(enr, now=attended_at, actor=by)
    enrollment.mark_completed(enr, now=completed_at, actor=by)
