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
      into review (``sweep_expired_clearances``, run by the scheduler)

A positive PHQ-9 item 9 or reported active suicidal ideation raises a SafetyAlert at once
("safety review needed", no details) for the cohort's facilitators and the provider
organisation, by email and on their dashboards.

Services never read clinical data back for display: that is ``clinical_access``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import Role, User
from retreat.clinical import outcomes, screening
from retreat.clinical.access import seal_json, seal_text
from retreat.clinical.models import (
    OPEN_STATUSES,
    AlertStatus,
    ClearanceRequest,
    ClearanceStatus,
    Decision,
    InfoRequest,
    Intake,
    IntakeStatus,
    SafetyAlert,
    ScreeningLevel,
)
from retreat.cohorts import enrollment as pipeline
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core import jobs, signals, urls
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
DECISION_LABELS = {
    Decision.CLEARED: "Cleared",
    Decision.CLEARED_WITH_CONDITIONS: "Cleared with conditions",
    Decision.NOT_CLEARED: "Not cleared",
}
STALE_MESSAGE = ("This request changed while you were looking at it (someone else may have decided or asked "
                 "for more information). Nothing was saved: reload the page to see its current state.")
# Enrollment statuses whose clearance can lapse back into review.
CLEARED_STAGES = frozenset({S.CLEARED, S.DEPOSIT_PAID, S.BALANCE_PAID})


def _url(path: str) -> str:
    return f"{urls.base_url()}{path}"


def _participant_url(enr: Enrollment) -> str:
    return _url(f"/me/enrollments/{enr.id}/clearance")


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


def _lock_request(req: ClearanceRequest) -> ClearanceRequest:
    locked = db.session.scalar(select(ClearanceRequest).where(ClearanceRequest.id == req.id).with_for_update()
                               .execution_options(populate_existing=True))
    if locked is None:
        raise NotFound("We could not find that clearance request.")
    return locked


def _lock_intake(intake: Intake) -> Intake:
    return db.session.scalar(select(Intake).where(Intake.id == intake.id).with_for_update()
                             .execution_options(populate_existing=True))


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
    intake = _lock_intake(intake)
    if intake.status == IntakeStatus.SUBMITTED:
        raise Conflict("Your intake was already submitted and is with the medical provider. If they need more "
                       "information they will ask you here.")
    return intake


def save_draft(enr: Enrollment, actor: User, raw_answers: dict, *, now: datetime,
               ctx: RequestContext | None = None) -> SaveResult:
    """Save answers as they are (nothing is required yet). Bad values change nothing."""
    _check_owner(enr, actor)
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
    cohort = db.session.get(Cohort, enr.cohort_id)
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
        req = _refer(enr, intake, cohort, now=now, actor=actor, ctx=ctx)
    audit.record("intake.submitted", actor=actor, object_type="intake", object_id=intake.id,
                 details={"enrollment_id": enr.id, "submission": intake.submissions}, ctx=ctx, now=now)
    if result.safety:
        raise_safety_alert(enr, now=now, only_first=False)
    return SaveResult(intake, result.safety, req)


def _due_at(cohort: Cohort, now: datetime) -> datetime:
    due = min(now + timedelta(days=REVIEW_DAYS), cohort.starts_at - timedelta(days=REVIEW_BEFORE_START_DAYS))
    return max(due, now + timedelta(days=1))


def _refer(enr: Enrollment, intake: Intake, cohort: Cohort, *, now: datetime, actor: User | None,
           ctx: RequestContext | None, renewal: bool = False, resume_status: str | None = None) -> ClearanceRequest:
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
    intake = _lock_intake(req.intake)
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
                   context={"participant_name": person.name, "url": _participant_url(enr)})
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
    today = now.astimezone(zone(provider.tz)).date()
    license = accounts.valid_license_on(provider, today)
    if license is None:
        raise Conflict("Your licence on file has expired (or none is recorded), so you cannot record a clearance "
                       "decision. Ask an admin to add your current licence.", field="license")
    enr = req.enrollment
    cohort = db.session.get(Cohort, enr.cohort_id)
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
                   context={"participant_name": person.name, "url": _participant_url(enr)})
    if enr.status == S.CLEARED and cohort.requires_clearance_before_deposit and enr.seat != SeatState.CONFIRMED:
        outbox.enqueue(template="clearance_pay_deposit", dedupe_key=f"clearance-{req.id}-pay-deposit",
                       to_user=person, group_key=f"enrollment:{enr.id}", now=now,
                       context={"participant_name": person.name, "cohort_title": cohort.title,
                                "retreat_title": cohort.retreat.title,
                                "url": _url(f"/me/enrollments/{enr.id}")})


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
                            "url": _participant_url(enrollment), "consult_url": _url("/")})


# --------------------------------------------------------------------------------------------
# Expiry, withdrawal, state for others
# --------------------------------------------------------------------------------------------


def sweep_expired_clearances(now: datetime) -> int:
    """Scheduler job: clearances that expired before the retreat go back into review.

    The decided request becomes ``lapsed``, a renewal request goes to the same organisation and
    the enrollment returns to clearance_pending. Open requests of closed applications are
    withdrawn. The caller commits once. Returns how many clearances lapsed.
    """
    lapsed = 0
    rows = list(db.session.scalars(select(ClearanceRequest.id).join(Enrollment).join(Cohort).where(
        ClearanceRequest.status == ClearanceStatus.DECIDED.value,
        ClearanceRequest.decision.in_([Decision.CLEARED.value, Decision.CLEARED_WITH_CONDITIONS.value]),
        ClearanceRequest.valid_until <= now, ClearanceRequest.valid_until < Cohort.starts_at,
        Enrollment.status.in_([s.value for s in CLEARED_STAGES])).order_by(ClearanceRequest.id)))
    for req_id in rows:
        req = _lock_request(db.session.get(ClearanceRequest, req_id))
        enr = req.enrollment
        if req.status != ClearanceStatus.DECIDED or S(enr.status) not in CLEARED_STAGES:
            continue
        req.status = ClearanceStatus.LAPSED.value
        req.version += 1
        req.updated_at = now
        resume = enr.status if enr.status in (S.DEPOSIT_PAID, S.BALANCE_PAID) else None
        pipeline.clearance_lapsed(enr, now=now, actor=None)
        cohort = db.session.get(Cohort, enr.cohort_id)
        _refer(enr, req.intake, cohort, now=now, actor=None, ctx=None, renewal=True, resume_status=resume)
        person = enr.participant
        outbox.enqueue(template="clearance_renewal", dedupe_key=f"clearance-{req.id}-lapsed", to_user=person,
                       group_key=f"clearance:{req.id}", now=now,
                       context={"participant_name": person.name, "url": _participant_url(enr)})
        audit.record("clearance.lapsed", object_type="clearance_request", object_id=req.id,
                     details={"enrollment_id": enr.id}, now=now)
        lapsed += 1
    for req in db.session.scalars(select(ClearanceRequest).join(Enrollment).where(
            ClearanceRequest.status.in_(OPEN_STATUSES),
            Enrollment.status.in_([s.value for s in pipeline.EXITS]))):
        withdraw(req, now=now)
    return lapsed


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


def has_valid_clearance(enr: Enrollment, now: datetime) -> bool:
    """Invariant 6 for Payments: cleared, not expired, decided under a licence valid that day."""
    req = db.session.scalar(select(ClearanceRequest).where(
        ClearanceRequest.enrollment_id == enr.id, ClearanceRequest.status == ClearanceStatus.DECIDED.value)
        .order_by(ClearanceRequest.decided_at.desc()).limit(1))
    return (req is not None and req.decision in (Decision.CLEARED, Decision.CLEARED_WITH_CONDITIONS)
            and req.valid_until is not None and req.valid_until > now and req.license_expires_on is not None
            and req.decided_at.date() <= req.license_expires_on and open_request(enr) is None)


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


# --------------------------------------------------------------------------------------------
# Safety alerts
# --------------------------------------------------------------------------------------------


def cohort_facilitators(cohort: Cohort) -> list[User]:
    """The facilitators of a cohort's sessions; every active facilitator when none is assigned yet."""
    ids = set(db.session.scalars(select(CohortSession.facilitator_id).where(
        CohortSession.cohort_id == cohort.id, CohortSession.facilitator_id.is_not(None))))
    stmt = select(User).where(User.role == Role.FACILITATOR.value, User.is_active_account.is_(True))
    if ids:
        stmt = stmt.where(User.id.in_(ids))
    return list(db.session.scalars(stmt.order_by(User.id)))


def _org_recipients(organization_id: int) -> list[User | str]:
    members = list(db.session.scalars(select(User).where(
        User.provider_organization_id == organization_id, User.role == Role.PROVIDER.value,
        User.is_active_account.is_(True)).order_by(User.id)))
    if members:
        return members
    from retreat.accounts.models import ProviderOrganization

    org = db.session.get(ProviderOrganization, organization_id)
    return [org.contact_email] if org is not None and org.contact_email else []


def _send(recipient: User | str, *, template: str, dedupe_key: str, context: dict, group_key: str | None,
          now: datetime) -> None:
    if isinstance(recipient, User):
        outbox.enqueue(template=template, dedupe_key=f"{dedupe_key}-u{recipient.id}", to_user=recipient,
                       group_key=group_key, now=now, context={"recipient_name": recipient.name, **context})
    else:
        outbox.enqueue(template=template, dedupe_key=f"{dedupe_key}-org", to_email=recipient,
                       group_key=group_key, now=now, context={"recipient_name": "", **context})


def _notify_org(req: ClearanceRequest, template: str, dedupe_key: str, *, now: datetime) -> None:
    for recipient in _org_recipients(req.organization_id):
        _send(recipient, template=template, dedupe_key=dedupe_key, group_key=f"clearance:{req.id}", now=now,
              context={"url": _url("/provider/")})


def raise_safety_alert(enr: Enrollment, *, now: datetime, only_first: bool = False) -> SafetyAlert | None:
    """"Safety review needed" to the cohort's facilitators and the provider organisation, no details.

    ``only_first`` (draft saves): raise only if this enrollment never had an alert; a submission
    raises a new one whenever none is open.
    """
    existing = db.session.scalars(select(SafetyAlert).where(SafetyAlert.enrollment_id == enr.id)).all()
    if any(a.status == AlertStatus.OPEN for a in existing) or (only_first and existing):
        return None
    cohort = db.session.get(Cohort, enr.cohort_id)
    alert = SafetyAlert(enrollment_id=enr.id, cohort_id=cohort.id, organization_id=cohort.provider_organization_id,
                        status=AlertStatus.OPEN.value, raised_at=now, created_at=now, updated_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(alert)
            db.session.flush()
    except IntegrityError:  # raised concurrently: one open alert is enough
        return None
    context = {"cohort_title": cohort.title}
    for person in cohort_facilitators(cohort):
        _send(person, template="safety_alert", dedupe_key=f"safety-{alert.id}", group_key=None, now=now,
              context={**context, "url": _url("/facilitator/safety-alerts")})
    if cohort.provider_organization_id is not None:
        for recipient in _org_recipients(cohort.provider_organization_id):
            _send(recipient, template="safety_alert", dedupe_key=f"safety-{alert.id}", group_key=None, now=now,
                  context={**context, "url": _url("/provider/")})
    audit.record("safety.alert_raised", object_type="safety_alert", object_id=alert.id,
                 details={"enrollment_id": enr.id, "cohort_id": cohort.id, "highlight": True}, now=now)
    return alert


@signals.consult_flagged.connect(order=10)
def raise_consult_safety_alert(consult, *, now: datetime) -> SafetyAlert | None:
    """"Safety review needed" for the consult's facilitator when its pre-screen reports suicidal
    ideation or self-harm. Same alert, page and email as an intake's; no details. One open per consult."""
    if db.session.scalar(select(SafetyAlert.id).where(SafetyAlert.consultation_id == consult.id,
                                                      SafetyAlert.status == AlertStatus.OPEN.value)):
        return None
    alert = SafetyAlert(consultation_id=consult.id, status=AlertStatus.OPEN.value, raised_at=now,
                        created_at=now, updated_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(alert)
            db.session.flush()
    except IntegrityError:
        return None
    facilitator = db.session.get(User, consult.facilitator_id)
    recipients = [facilitator] if facilitator is not None and facilitator.is_active else []
    for person in recipients:
        _send(person, template="safety_alert", dedupe_key=f"safety-{alert.id}", group_key=None, now=now,
              context={"cohort_title": "", "url": _url("/facilitator/safety-alerts")})
    audit.record("safety.alert_raised", object_type="safety_alert", object_id=alert.id,
                 details={"consultation_id": consult.id, "highlight": True}, now=now)
    return alert


def open_alerts(*, organization_id: int | None = None) -> list[SafetyAlert]:
    stmt = select(SafetyAlert).where(SafetyAlert.status == AlertStatus.OPEN.value)
    if organization_id is not None:
        stmt = stmt.where(SafetyAlert.organization_id == organization_id)
    return list(db.session.scalars(stmt.order_by(SafetyAlert.raised_at)))


def open_alert_for(enrollment_id: int) -> SafetyAlert | None:
    return db.session.scalar(select(SafetyAlert).where(SafetyAlert.enrollment_id == enrollment_id,
                                                       SafetyAlert.status == AlertStatus.OPEN.value))


def acknowledge_alert(alert: SafetyAlert, actor: User, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    allowed = actor.role == Role.FACILITATOR or (
        actor.role == Role.PROVIDER and alert.organization_id is not None
        and actor.provider_organization_id == alert.organization_id)
    if not allowed:
        raise NotFound("We could not find that alert.")
    if alert.status != AlertStatus.OPEN:
        return False
    alert.status = AlertStatus.ACKNOWLEDGED.value
    alert.acknowledged_at = now
    alert.acknowledged_by_id = actor.id
    alert.updated_at = now
    audit.record("safety.alert_acknowledged", actor=actor, object_type="safety_alert", object_id=alert.id,
                 ctx=ctx, now=now)
    return True


# --------------------------------------------------------------------------------------------
# Privacy: deletion requests
# --------------------------------------------------------------------------------------------


def request_deletion(participant: User, *, reason: str = "", now: datetime,
                     ctx: RequestContext | None = None) -> int:
    """Log the request and erase what the practice need not keep: intakes never submitted.

    Submitted intakes, clearance decisions, consents, payments and the audit log are retained as
    medical and financial records. Admins are told (no details). Returns how many drafts were erased.
    """
    reason = (reason or "").strip()
    if len(reason) > 1000:
        raise ValidationFailed("Please keep this under 1000 characters.", field="reason")
    erased = 0
    for intake in db.session.scalars(select(Intake).where(
            Intake.participant_id == participant.id, Intake.status == IntakeStatus.DRAFT.value,
            Intake.submissions == 0).with_for_update()):
        intake.answers_enc = None
        intake.status = IntakeStatus.ERASED.value
        intake.updated_at = now
        erased += 1
    audit.record("privacy.deletion_requested", actor=participant, object_type="user", object_id=participant.id,
                 details={"erased_drafts": erased, "highlight": True, "reason_given": bool(reason)}, ctx=ctx, now=now)
    admins = db.session.scalars(select(User).where(User.role == Role.ADMIN.value, User.is_active_account.is_(True)))
    for admin in admins:
        outbox.enqueue(template="clearance_deletion_requested",
                       dedupe_key=f"deletion-{participant.id}-{now.isoformat()}-u{admin.id}", to_user=admin, now=now,
                       context={"recipient_name": admin.name, "url": _url("/admin/")})
    return erased


def deletion_requested_at(participant: User) -> datetime | None:
    from retreat.audit.models import AuditEvent

    return db.session.scalar(select(AuditEvent.at).where(
        AuditEvent.action == "privacy.deletion_requested", AuditEvent.object_type == "user",
        AuditEvent.object_id == str(participant.id)).order_by(AuditEvent.at.desc()).limit(1))


jobs.register("clearance.expire", sweep_expired_clearances, seconds=300)
