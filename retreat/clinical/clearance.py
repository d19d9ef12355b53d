"""Medical intake and partner-provider clearance.

    participant saves the intake as a draft (as often as they like), then submits it once
      -> screening rules produce the referral summary (``retreat.clinical.screening``)
      -> a ClearanceRequest to the cohort's partner provider organisation (enrollment:
         applied -> intake_submitted -> clearance_pending)
    provider asks for more information (thread; the intake reopens; enrollment back to
      intake_submitted) -> the participant updates and resubmits (clearance_pending again)
    provider decides, under a valid licence, with an attestation:
      cleared / cleared with conditions -> enrollment cleared (invites the deposit when it
      comes after clearance); not cleared -> enrollment closed kindly (``_on_not_cleared``)
    a clearance that expires before the retreat -> a renewal request; the enrollment goes back
      into review (``retreat.clinical.expiry``, run by the scheduler)

A positive PHQ-9 item 9 or reported active suicidal ideation raises a SafetyAlert at once
("safety review needed", no details: ``retreat.clinical.safety``).

Services never read clinical data back for display: that is ``clinical_access``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import Role, User
from retreat.clinical import notices, outcomes, screening
from retreat.clinical.access import seal_json, seal_text
from retreat.clinical.clearance_status import get_intake, open_request
from retreat.clinical.models import (
    ClearanceRequest,
    ClearanceStatus,
    Decision,
    InfoRequest,
    Intake,
    IntakeStatus,
    ScreeningLevel,
)
from retreat.clinical.safety import raise_safety_alert
from retreat.cohorts import enrollment as pipeline
from retreat.cohorts.models import Cohort, Enrollment, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core import locking, urls
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.timeutil import zone

REVIEW_DAYS = 5
REVIEW_BEFORE_START_DAYS = 14
MESSAGE_MAX = 4000
CONDITIONS_MAX = 2000
RATIONALE_MIN = 20
VALIDITY_MAX_DAYS = 2 * 365
ATTESTATION_TEXT = (
    "I attest that I personally reviewed this participant's medical intake, screening flags and baseline "
    "scores, and that this decision reflects my independent clinical judgement under the licence shown."
)
STALE_MESSAGE = ("This request changed while you were looking at it (someone else may have decided or asked "
                 "for more information). Nothing was saved: reload the page to see its current state.")


def participant_url(enr: Enrollment) -> str:
    """The participant's clearance page (the link of every email to them about it)."""
    return urls.absolute(f"/me/enrollments/{enr.id}/clearance")


def _notify_org(req: ClearanceRequest, template: str, dedupe_key: str, *, now: datetime) -> None:
    """The referred organisation's contacts hear that a request needs them (no details)."""
    notices.notify_organization(req.organization_id, template=template, dedupe_key=dedupe_key,
                                group_key=f"clearance:{req.id}", now=now,
                                context={"url": urls.absolute("/provider/")})


# --------------------------------------------------------------------------------------------
# Locks (in core.locking.LOCK_ORDER)
# --------------------------------------------------------------------------------------------


# A path that changes an enrollment's status locks it first: its cohort (exits and clearances
# move seats), the enrollment, then the intake, then the request.


def _lock_enrollment(enr: Enrollment, *, with_cohort: bool = False) -> None:
    if with_cohort:
        locking.lock(Cohort, enr.cohort_id)
    locking.lock(Enrollment, enr.id)


def _lock_request(req: ClearanceRequest) -> ClearanceRequest:
    locked = locking.lock(ClearanceRequest, req.id)
    if locked is None:
        raise NotFound("We could not find that clearance request.")
    return locked


# --------------------------------------------------------------------------------------------
# The participant's intake
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveResult:
    intake: Intake
    safety: bool  # show crisis resources now
    request: ClearanceRequest | None = None


def _check_owner(enr: Enrollment, actor: User) -> None:
    if actor is None or actor.id != enr.participant_id:
        raise NotFound("We could not find that application.")
    if not enr.is_active:
        raise Conflict("This application is closed, so the medical intake can no longer be changed.")


def _editable_intake(enr: Enrollment, *, now: datetime) -> Intake:
    intake = get_intake(enr)
    if intake is None:
        intake = Intake(enrollment_id=enr.id, participant_id=enr.participant_id, status=IntakeStatus.DRAFT.value,
                        submissions=0, safety_concern=False, created_at=now, updated_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(intake)
                db.session.flush()
        except IntegrityError:  # a concurrent first save (two tabs): use theirs
            intake = get_intake(enr)
    intake = locking.lock(Intake, intake.id)
    if intake.status == IntakeStatus.SUBMITTED:
        raise Conflict("Your intake was already submitted and is with the medical provider. If they need more "
                       "information they will ask you here.")
    return intake


def save_draft(enr: Enrollment, actor: User, raw_answers: dict, *, now: datetime,
               ctx: RequestContext | None = None) -> SaveResult:
    """Save answers as they are (nothing is required yet). Bad values change nothing."""
    _check_owner(enr, actor)
    _lock_enrollment(enr)
    answers = screening.clean_answers(raw_answers, complete=False)
    intake = _editable_intake(enr, now=now)
    intake.answers_enc = seal_json(answers)
    intake.status = IntakeStatus.DRAFT.value
    intake.last_saved_at = now
    intake.updated_at = now
    safety = screening.safety_signal(answers)
    if safety:
        raise_safety_alert(enr, now=now, only_first=True)
    return SaveResult(intake, safety)


def submit(enr: Enrollment, actor: User, raw_answers: dict, *, now: datetime,
           ctx: RequestContext | None = None) -> SaveResult:
    """Submit (or resubmit after a request for more information) and refer to the provider."""
    _check_owner(enr, actor)
    _lock_enrollment(enr)
    cohort = db.session.get(Cohort, enr.cohort_id)
    if enr.screening_fee_due:
        raise Conflict("Pay the screening fee first: your application counts as submitted once it is paid, "
                       "and then your intake goes to the medical provider. Your draft is kept.")
    if cohort.provider_organization_id is None:
        raise Conflict("Medical review is not open for this cohort yet: the practice is still arranging its "
                       "partner provider. Your draft is kept; please try again later.")
    answers = screening.clean_answers(raw_answers, complete=True)
    result = screening.screen(answers)
    intake = _editable_intake(enr, now=now)
    existing = open_request(enr)
    intake.answers_enc = seal_json(answers)
    intake.screening_enc = seal_json(result.summary())
    intake.screening_level = result.level.value
    intake.safety_concern = result.safety
    intake.status = IntakeStatus.SUBMITTED.value
    intake.submitted_at = now
    intake.last_saved_at = now
    intake.updated_at = now
    intake.submissions = (intake.submissions or 0) + 1
    outcomes.record_baseline_from_intake(enr, answers, now=now)
    if existing is not None:  # resubmission after a request for more information
        req = _lock_request(existing)
        req.status = ClearanceStatus.PENDING.value
        req.version += 1
        req.updated_at = now
        pipeline.request_clearance(enr, now=now, actor=actor)
        _notify_org(req, "clearance_updated", f"clearance-{req.id}-updated-{req.version}", now=now)
        audit.record("clearance.resubmitted", actor=actor, object_type="clearance_request", object_id=req.id,
                     ctx=ctx, now=now)
    else:
        pipeline.submit_intake(enr, now=now, actor=actor)
        req = refer(enr, intake, cohort, now=now, actor=actor, ctx=ctx)
    audit.record("intake.submitted", actor=actor, object_type="intake", object_id=intake.id,
                 details={"enrollment_id": enr.id, "submission": intake.submissions}, ctx=ctx, now=now)
    if result.safety:
        raise_safety_alert(enr, now=now, only_first=False)
    return SaveResult(intake, result.safety, req)


def _due_at(cohort: Cohort, now: datetime) -> datetime:
    due = min(now + timedelta(days=REVIEW_DAYS), cohort.starts_at - timedelta(days=REVIEW_BEFORE_START_DAYS))
    return max(due, now + timedelta(days=1))


def refer(enr: Enrollment, intake: Intake, cohort: Cohort, *, now: datetime, actor: User | None,
           ctx: RequestContext | None, renewal: bool = False, resume_status: str | None = None) -> ClearanceRequest:
    """A new request to the cohort's partner organisation (a first referral, or a ``renewal`` after a
    lapse, which resumes the enrollment at ``resume_status`` once cleared). One open request per
    enrollment: a second is refused with Conflict."""
    req = ClearanceRequest(enrollment_id=enr.id, intake_id=intake.id, organization_id=cohort.provider_organization_id,
                           status=ClearanceStatus.PENDING.value, renewal=renewal, referred_at=now,
                           due_at=_due_at(cohort, now), version=1, resume_status=resume_status,
                           conditions_shareable=False, absolute_override=False, created_at=now, updated_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(req)
            db.session.flush()
    except IntegrityError as exc:  # the partial unique index: one open request per enrollment
        raise Conflict("This intake is already with the medical provider.") from exc
    if enr.status != S.CLEARANCE_PENDING:
        pipeline.request_clearance(enr, now=now, actor=actor)
    _notify_org(req, "clearance_new_request", f"clearance-{req.id}-new", now=now)
    audit.record("clearance.referred", actor=actor, object_type="clearance_request", object_id=req.id,
                 details={"enrollment_id": enr.id, "organization_id": req.organization_id, "renewal": renewal},
                 ctx=ctx, now=now)
    return req


# --------------------------------------------------------------------------------------------
# The thread: the provider asks, the participant answers
# --------------------------------------------------------------------------------------------


def _clean_message(body: str, field: str = "message") -> str:
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise ValidationFailed("Write your message.", field=field)
    if len(body) > MESSAGE_MAX:
        raise ValidationFailed(f"Please keep your message under {MESSAGE_MAX} characters (it has {len(body)}).",
                               field=field)
    return body


def _check_provider(req: ClearanceRequest, provider: User) -> None:
    if (provider is None or provider.role != Role.PROVIDER or not provider.is_active
            or provider.provider_organization_id != req.organization_id):
        raise NotFound("We could not find that clearance request.")


def _check_current(req: ClearanceRequest, expected_version: int | None) -> None:
    """Refuse withdrawn, closed and stale work with a clear message (nothing changes)."""
    enr = req.enrollment
    if req.status == ClearanceStatus.WITHDRAWN or (req.is_open and not enr.is_active):
        raise Conflict("This request was withdrawn: the application is closed, so nothing can be recorded.")
    if req.status == ClearanceStatus.DECIDED:
        who = req.decided_by.name if req.decided_by else "another provider"
        raise Conflict(f"This request was already decided by {who}. Nothing was changed: reload the page to "
                       "see the decision.")
    if req.status == ClearanceStatus.LAPSED:
        raise Conflict("This clearance has lapsed; a renewal request is in the queue.")
    if expected_version is not None and expected_version != req.version:
        raise Conflict(STALE_MESSAGE, field="version")


def request_more_info(req: ClearanceRequest, provider: User, message: str, *, expected_version: int | None,
                      now: datetime, ctx: RequestContext | None = None) -> InfoRequest:
    _check_provider(req, provider)
    body = _clean_message(message)
    _lock_enrollment(req.enrollment)
    intake = locking.lock(Intake, req.intake_id)
    req = _lock_request(req)
    _check_current(req, expected_version)
    if req.status != ClearanceStatus.PENDING:
        raise Conflict("You already asked for more information; the participant has not resubmitted yet.")
    msg = InfoRequest(clearance_request_id=req.id, author_id=provider.id, author_role=Role.PROVIDER.value,
                      body_enc=seal_text(body), created_at=now)
    db.session.add(msg)
    req.status = ClearanceStatus.INFO_REQUESTED.value
    req.version += 1
    req.updated_at = now
    intake.status = IntakeStatus.DRAFT.value  # the participant can update it
    intake.updated_at = now
    enr = req.enrollment
    if enr.status == S.CLEARANCE_PENDING:
        pipeline.transition(enr, S.INTAKE_SUBMITTED, now=now, actor=provider,
                            reason="The medical provider asked for more information")
    db.session.flush()
    person = enr.participant
    outbox.enqueue(template="clearance_info_requested", dedupe_key=f"clearance-{req.id}-info-{msg.id}",
                   to_user=person, group_key=f"clearance:{req.id}", now=now,
                   context={"participant_name": person.name, "url": participant_url(enr)})
    audit.record("clearance.info_requested", actor=provider, object_type="clearance_request", object_id=req.id,
                 details={"participant_id": enr.participant_id}, ctx=ctx, now=now)
    return msg


def reply(req: ClearanceRequest, participant: User, message: str, *, now: datetime,
          ctx: RequestContext | None = None) -> InfoRequest:
    """The participant writes in the thread (without resubmitting the intake)."""
    enr = req.enrollment
    _check_owner(enr, participant)
    body = _clean_message(message)
    req = _lock_request(req)
    if not req.is_open:
        raise Conflict("This review is closed, so messages can no longer be added.")
    msg = InfoRequest(clearance_request_id=req.id, author_id=participant.id, author_role=Role.PARTICIPANT.value,
                      body_enc=seal_text(body), created_at=now)
    db.session.add(msg)
    req.updated_at = now
    db.session.flush()
    _notify_org(req, "clearance_updated", f"clearance-{req.id}-reply-{msg.id}", now=now)
    audit.record("clearance.participant_replied", actor=participant, object_type="clearance_request",
                 object_id=req.id, ctx=ctx, now=now)
    return msg


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


def _norm_name(name: str) -> str:
    return " ".join((name or "").split()).casefold()


def default_valid_until(cohort: Cohort) -> date:
    return cohort.ends_at.astimezone(zone(cohort.timezone)).date()


def _end_of_day(day: date, tz_name: str) -> datetime:
    local = datetime.combine(day, time(23, 59, 59), tzinfo=zone(tz_name))
    return local.astimezone(zone("UTC"))


def decide(req: ClearanceRequest, provider: User, *, decision: str, attestation_name: str,
           expected_version: int | None, now: datetime, conditions: str = "", conditions_shareable: bool = False,
           valid_until: date | None = None, rationale: str = "", participant_note: str = "",
           ctx: RequestContext | None = None) -> ClearanceRequest:
    """Record the provider's decision. Every refusal leaves the request and enrollment unchanged."""
    _check_provider(req, provider)
    errors: dict[str, list[str]] = {}
    try:
        decision = Decision(decision)
    except ValueError:
        errors["decision"] = ["Choose cleared, cleared with conditions, or not cleared."]
        decision = None
    conditions = (conditions or "").replace("\r\n", "\n").strip()
    rationale = (rationale or "").replace("\r\n", "\n").strip()
    participant_note = (participant_note or "").replace("\r\n", "\n").strip()
    if decision == Decision.CLEARED_WITH_CONDITIONS and not conditions:
        errors["conditions"] = ["Write the conditions (for example “blood pressure check on arrival”)."]
    if decision in (Decision.CLEARED, Decision.NOT_CLEARED) and conditions:
        errors["conditions"] = ["Conditions go with “cleared with conditions”; clear this box or change the decision."]
    if len(conditions) > CONDITIONS_MAX:
        errors["conditions"] = [f"Please keep the conditions under {CONDITIONS_MAX} characters."]
    if len(rationale) > MESSAGE_MAX:
        errors["rationale"] = [f"Please keep the rationale under {MESSAGE_MAX} characters."]
    if len(participant_note) > MESSAGE_MAX:
        errors["participant_note"] = [f"Please keep the note under {MESSAGE_MAX} characters."]
    if _norm_name(attestation_name) != _norm_name(provider.name) or not _norm_name(attestation_name):
        errors["attestation_name"] = [f"Type your full name exactly as on your account ({provider.name}) to attest."]
    enr = req.enrollment
    cohort = db.session.get(Cohort, enr.cohort_id)
    # The cohort's local date, the day ``clearance_validity`` checks the licence on afterwards.
    license = accounts.valid_license_on(provider, now.astimezone(zone(cohort.timezone)).date())
    if license is None:
        raise Conflict("Your licence on file has expired (or none is recorded), so you cannot record a clearance "
                       "decision. Ask an admin to add your current licence.", field="license")
    if decision != Decision.NOT_CLEARED:
        cohort_today = now.astimezone(zone(cohort.timezone)).date()
        valid_day = valid_until or default_valid_until(cohort)
        if valid_day < cohort_today:
            errors["valid_until"] = ["The clearance must be valid until today or later."]
        elif valid_day > cohort_today + timedelta(days=VALIDITY_MAX_DAYS):
            errors["valid_until"] = ["A clearance can be valid for at most two years."]
    intake = req.intake
    override = decision in (Decision.CLEARED, Decision.CLEARED_WITH_CONDITIONS) and \
        intake.screening_level == ScreeningLevel.ABSOLUTE
    if override and len(rationale) < RATIONALE_MIN:
        errors["rationale"] = ["This intake has an absolute contraindication. Clearing it needs a written "
                               f"rationale (at least {RATIONALE_MIN} characters); it is highlighted in the audit log."]
    if errors:
        raise ValidationFailed("The decision was not recorded: check the highlighted fields.", errors=errors)
    _lock_enrollment(enr, with_cohort=True)
    req = _lock_request(req)
    _check_current(req, expected_version)
    if req.status != ClearanceStatus.PENDING:
        raise Conflict("The participant has not resubmitted their intake yet; decide once they have.")
    req.status = ClearanceStatus.DECIDED.value
    req.decision = decision.value
    req.decided_at = now
    req.decided_by_id = provider.id
    req.license_id = license.id
    req.license_kind = license.kind
    req.license_number = license.number
    req.license_state = license.state
    req.license_expires_on = license.expires_on
    req.attestation_name = " ".join(attestation_name.split())
    req.attestation_text = ATTESTATION_TEXT
    req.conditions_enc = seal_text(conditions)
    req.conditions_shareable = bool(conditions_shareable and conditions)
    req.rationale_enc = seal_text(rationale)
    req.participant_note_enc = seal_text(participant_note)
    req.absolute_override = override
    req.valid_until = None if decision == Decision.NOT_CLEARED else _end_of_day(valid_day, cohort.timezone)
    req.closed_at = now
    req.version += 1
    req.updated_at = now
    details = {"decision": decision.value, "participant_id": enr.participant_id,
               "license": f"{license.kind} {license.number} ({license.state})",
               "valid_until": req.valid_until.isoformat() if req.valid_until else None}
    audit.record("clearance.decided", actor=provider, object_type="clearance_request", object_id=req.id,
                 details=details, ctx=ctx, now=now)
    if override:
        audit.record("clearance.absolute_override", actor=provider, object_type="clearance_request",
                     object_id=req.id, ctx=ctx, now=now,
                     details={"participant_id": enr.participant_id, "highlight": True,
                              "note": "Cleared despite an absolute contraindication; written rationale recorded."})
    if decision == Decision.NOT_CLEARED:
        pipeline.mark_not_cleared(enr, now=now, actor=provider, reason="Not medically cleared by the partner provider")
        _on_not_cleared(enr, now, provider)
    else:
        _on_cleared(req, enr, cohort, now=now, actor=provider)
    return req


def _on_cleared(req: ClearanceRequest, enr: Enrollment, cohort: Cohort, *, now: datetime, actor: User) -> None:
    pipeline.mark_cleared(enr, now=now, actor=actor, reason="Medically cleared by the partner provider")
    if req.resume_status == S.BALANCE_PAID and enr.status == S.DEPOSIT_PAID:
        pipeline.mark_balance_paid(enr, now=now, actor=actor)
    person = enr.participant
    outbox.enqueue(template="clearance_decided", dedupe_key=f"clearance-{req.id}-decided", to_user=person,
                   group_key=f"clearance:{req.id}", now=now,
                   context={"participant_name": person.name, "url": participant_url(enr)})
    if enr.status == S.CLEARED and cohort.requires_clearance_before_deposit and enr.seat != SeatState.CONFIRMED:
        outbox.enqueue(template="clearance_pay_deposit", dedupe_key=f"clearance-{req.id}-pay-deposit",
                       to_user=person, group_key=f"enrollment:{enr.id}", now=now,
                       context={"participant_name": person.name, "cohort_title": cohort.title,
                                "retreat_title": cohort.retreat.title,
                                "url": urls.absolute(f"/me/enrollments/{enr.id}")})


def _on_not_cleared(enrollment: Enrollment, now: datetime, actor: User | None) -> None:
    """After "not cleared": a kind message that offers a consult.

    The automatic full refund of whatever was paid (the deposit) was decided by then, in the same
    transaction as the decision, by the ``enrollment_left`` handler of ``retreat.payments.refunds``
    (``mark_not_cleared`` is an exit), so neither can exist without the other; it is sent to Stripe
    after the commit by ``refunds.submit_pending`` (no lock is ever held across a Stripe call).
    """
    person = enrollment.participant
    outbox.enqueue(template="clearance_not_cleared", dedupe_key=f"enrollment-{enrollment.id}-not-cleared",
                   to_user=person, now=now,
                   context={"participant_name": person.name, "retreat_title": enrollment.cohort.retreat.title,
                            "url": participant_url(enrollment), "consult_url": urls.consult_booking_url()})


# --------------------------------------------------------------------------------------------
# Withdrawal (the payment guard, "valid clearance on date D", is ``clearance_validity``)
# --------------------------------------------------------------------------------------------


def withdraw(req: ClearanceRequest, *, now: datetime) -> bool:
    """Close an open request whose application closed (the lead may call this on every exit)."""
    req = _lock_request(req)
    if not req.is_open:
        return False
    req.status = ClearanceStatus.WITHDRAWN.value
    req.closed_at = now
    req.version += 1
    req.updated_at = now
    audit.record("clearance.withdrawn", object_type="clearance_request", object_id=req.id, now=now)
    return True

