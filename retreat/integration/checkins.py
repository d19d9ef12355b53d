"""Answering a follow-up from the link in its email (the link itself: ``integration.links``).

Check-ins (24 h, 72 h): how are you (1-10), sleep, any difficult experiences, "I would like someone
to reach out", free text; sealed as one JSON value in ``CheckInResponse.answers_enc``.
Surveys (right after, 1 month, 3 months): PHQ-9 and GAD-7, stored with ``outcomes.record`` at the
follow-up's timepoint.

Escalation: "reach out", a score of 3 or less, or PHQ-9 item 9 above 0 raise an
``IntegrationAlert`` and email the facilitators at once (no details); the view then shows the
participant crisis resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts.models import User
from retreat.clinical import outcomes, screening
from retreat.clinical.access import seal_json
from retreat.clinical.outcome_models import OutcomeInstrument, OutcomeMeasure
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field
from retreat.core.errors import NotFound, ValidationFailed
from retreat.extensions import db
from retreat.integration import followups, links
from retreat.integration.followup_models import (
    SURVEY_TIMEPOINTS,
    AlertReason,
    CheckInResponse,
    FollowUp,
    FollowUpStatus,
)
from retreat.timeutil import ensure_utc

SCORE_MIN, SCORE_MAX = 1, 10
LOW_SCORE = 3  # this or lower alerts the facilitators
FREE_TEXT_MAX = 2000
SLEEP_CHOICES = (("well", "I slept well"), ("some_trouble", "Some trouble sleeping"),
                 ("poorly", "I slept poorly"), ("hardly", "I hardly slept"))
YES_NO = (("no", "No"), ("yes", "Yes"))
REQUIRED = "Please answer this question."


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _one(form: Mapping, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def clean_checkin(form: Mapping) -> dict:
    """The check-in answers, or ``ValidationFailed`` with a message per field."""
    errors: dict[str, list[str]] = {}
    raw = _one(form, "score")
    score = None
    if not raw:
        errors["score"] = [REQUIRED]
    else:
        try:
            score = int(raw)
        except ValueError:
            errors["score"] = [f"Choose a whole number from {SCORE_MIN} to {SCORE_MAX}."]
        else:
            if not SCORE_MIN <= score <= SCORE_MAX:
                errors["score"] = [f"Choose a whole number from {SCORE_MIN} to {SCORE_MAX}."]
    sleep = _one(form, "sleep")
    if sleep not in dict(SLEEP_CHOICES):
        errors["sleep"] = [REQUIRED if not sleep else "Choose one of the answers."]
    difficult = _one(form, "difficult")
    if difficult not in dict(YES_NO):
        errors["difficult"] = [REQUIRED if not difficult else "Choose yes or no."]
    reach_out = _one(form, "reach_out").lower() in ("y", "yes", "on", "true", "1")
    text = _one(form, "text")
    if len(text) > FREE_TEXT_MAX:
        errors["text"] = [f"Please keep this under {FREE_TEXT_MAX} characters (it has {len(text)})."]
    if errors:
        raise ValidationFailed("Some answers need another look.", errors=errors)
    return {"score": score, "sleep": sleep, "difficult": difficult == "yes", "reach_out": reach_out, "text": text}


def clean_survey(form: Mapping) -> tuple[list[int], list[int]]:
    errors: dict[str, list[str]] = {}

    def items(keys) -> list[int]:
        values = []
        for key in keys:
            raw = _one(form, key)
            if raw not in ("0", "1", "2", "3"):
                errors[key] = [REQUIRED if not raw else "Choose one of the four answers."]
            else:
                values.append(int(raw))
        return values

    phq9, gad7 = items(screening.PHQ9_KEYS), items(screening.GAD7_KEYS)
    if errors:
        raise ValidationFailed("Please answer every question.", errors=errors)
    return phq9, gad7


# --------------------------------------------------------------------------------------------
# Answering
# --------------------------------------------------------------------------------------------


@dataclass
class Answered:
    follow_up: FollowUp
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_support(self) -> bool:
        """Show crisis resources: the participant asked for contact or signalled risk."""
        return bool(self.reasons)


def answer(token: str, form: Mapping, *, now: datetime, secret: str | None = None) -> Answered:
    """Validate and store the answers to the follow-up ``token`` names; escalate when needed."""
    f = links.open_followup(token, now=now, secret=secret, lock=True)
    enr = db.session.get(Enrollment, f.enrollment_id)
    reasons: list[str] = []
    if f.is_checkin:
        answers = clean_checkin(form)
        row = CheckInResponse(follow_up_id=f.id, enrollment_id=enr.id, answers_enc=seal_json(answers),
                              submitted_at=now, created_at=now, updated_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(row)
                db.session.flush()
        except IntegrityError as exc:  # a concurrent first answer won
            raise links.AlreadyAnswered("This check-in was already answered; your first answers were kept.") from exc
        if answers["reach_out"]:
            reasons.append(AlertReason.REACH_OUT.value)
        if answers["score"] <= LOW_SCORE:
            reasons.append(AlertReason.LOW_SCORE.value)
    else:
        phq9, gad7 = clean_survey(form)
        timepoint = SURVEY_TIMEPOINTS[f.kind]
        outcomes.record(enr, OutcomeInstrument.PHQ9.value, timepoint, phq9, now=now)
        outcomes.record(enr, OutcomeInstrument.GAD7.value, timepoint, gad7, now=now)
        if phq9[8] > 0:
            reasons.append(AlertReason.PHQ9_ITEM9.value)
    f.status = FollowUpStatus.ANSWERED.value
    f.answered_at = now
    f.updated_at = now
    if reasons:
        followups.raise_alerts(enr, f, reasons, now=now)
    participant = db.session.get(User, enr.participant_id)
    audit.record("followup.answered", actor=participant, object_type="follow_up", object_id=f.id,
                 details={"kind": f.kind}, now=now)
    return Answered(f, reasons)


def describe(f: FollowUp) -> dict:
    """What the form page shows about a follow-up (no clinical data)."""
    enr = db.session.get(Enrollment, f.enrollment_id)
    cohort = db.session.get(Cohort, enr.cohort_id)
    participant = db.session.get(User, enr.participant_id)
    return {"kind": f.kind, "label": followups.KIND_LABELS[f.kind], "is_checkin": f.is_checkin,
            "cohort_title": cohort.title, "first_name": (participant.name or "").split(" ")[0],
            "expires_at": f.expires_at, "tz": participant.tz}


def export_rows(participant: User) -> list[dict]:
    """The participant's own check-in answers (their data export; the caller checked the actor)."""
    rows = db.session.execute(
        select(CheckInResponse, FollowUp.kind).join(FollowUp, FollowUp.id == CheckInResponse.follow_up_id)
        .join(Enrollment, Enrollment.id == CheckInResponse.enrollment_id)
        .where(Enrollment.participant_id == participant.id).order_by(CheckInResponse.submitted_at, CheckInResponse.id))
    return [{"enrollment_id": r.enrollment_id, "check_in": followups.KIND_LABELS[kind],
             "submitted_at": r.submitted_at.isoformat(), "answers": open_answers(r)}
            for r, kind in rows]


def open_answers(row: CheckInResponse) -> dict:
    """Decrypt one check-in's answers. Callers are the participant's own read paths only (their
    export, their check-in pages)."""
    return json.loads(decrypt_field(row.answers_enc))


# --------------------------------------------------------------------------------------------
# The participant's own check-ins ("Your check-ins" in the portal)
# --------------------------------------------------------------------------------------------

ANSWERED, PENDING, CLOSED = "answered", "pending", "closed"


@dataclass
class SurveyScore:
    label: str  # "PHQ-9 (depression)"
    total: int
    band: str  # the standard severity band, as on the progress page


@dataclass
class OwnCheckIn:
    """One follow-up the participant was sent, as their list shows it."""

    follow_up: FollowUp
    cohort: Cohort
    sent_at: datetime | None
    state: str  # ANSWERED, PENDING (sent, unanswered, link still open) or CLOSED (expired unanswered)
    wellbeing: int | None = None  # check-ins: "how are you today", 1-10
    reach_out: bool | None = None  # check-ins: asked for someone to reach out (surveys do not ask)
    scores: list[SurveyScore] = field(default_factory=list)

    @property
    def label(self) -> str:
        return followups.KIND_LABELS[self.follow_up.kind]

    @property
    def is_checkin(self) -> bool:
        return self.follow_up.is_checkin


@dataclass
class AnswerLine:
    question: str
    answer: str


@dataclass
class OwnAnswers:
    """One answered follow-up with the participant's own answers, decrypted for them."""

    item: OwnCheckIn
    groups: list[tuple[str, list[AnswerLine]]]  # (heading, answers): one for a check-in, one per questionnaire
    text: str = ""  # check-ins: their own words
    needs_support: bool = False  # as after answering: reach out, a low score or PHQ-9 item 9 above 0


def _scores(rows) -> dict[tuple[int, str], list]:
    """OutcomeMeasure rows by (enrollment, timepoint), PHQ-9 first."""
    out: dict[tuple[int, str], list] = {}
    for r in sorted(rows, key=lambda r: (r.instrument != OutcomeInstrument.PHQ9.value, r.id)):
        out.setdefault((r.enrollment_id, r.timepoint), []).append(r)
    return out


def _survey_scores(measures) -> list[SurveyScore]:
    from retreat.clinical import outcome_reports

    out = []
    for m in measures:
        total = int(outcomes.open_scores(m)["total"])
        out.append(SurveyScore(outcome_reports.INSTRUMENTS[m.instrument].label, total,
                               outcome_reports.band_label(m.instrument, total)))
    return out


def _delivered_rows(participant: User, *, follow_up_id: int | None = None):
    """(FollowUp, Cohort, sent at) of the participant's follow-ups that reached them (one query).

    "Reached": answered, marked sent, or its email already out before the sweep recorded it.
    """
    from retreat.messaging.models import OutboxMessage, OutboxStatus

    stmt = (select(FollowUp, Cohort, OutboxMessage.sent_at)
            .join(Enrollment, Enrollment.id == FollowUp.enrollment_id)
            .join(Cohort, Cohort.id == Enrollment.cohort_id)
            .outerjoin(OutboxMessage, OutboxMessage.dedupe_key == FollowUp.outbox_dedupe_key)
            .options(joinedload(Cohort.retreat))
            .where(Enrollment.participant_id == participant.id,
                   or_(FollowUp.status.in_([FollowUpStatus.SENT.value, FollowUpStatus.ANSWERED.value]),
                       FollowUp.sent_at.is_not(None), OutboxMessage.status == OutboxStatus.SENT.value)))
    if follow_up_id is not None:
        stmt = stmt.where(FollowUp.id == follow_up_id)
    return db.session.execute(stmt).unique().all()


def _state(f: FollowUp, now: datetime) -> str:
    if f.status == FollowUpStatus.ANSWERED:
        return ANSWERED
    if f.status in (FollowUpStatus.SENT, FollowUpStatus.SCHEDULED) and now < f.expires_at:
        return PENDING
    return CLOSED


def own_checkins(participant: User, *, now: datetime, ctx: RequestContext | None = None) -> list[OwnCheckIn]:
    """Every follow-up the participant was sent, newest first, with their check-in rating and
    survey scores. Three queries whatever the number of follow-ups; one audit event."""
    rows = _delivered_rows(participant)
    answered = {f.id for f, _, _ in rows if f.status == FollowUpStatus.ANSWERED}
    responses: dict[int, dict] = {}
    if any(f.is_checkin for f, _, _ in rows if f.id in answered):
        responses = {r.follow_up_id: open_answers(r) for r in db.session.scalars(
            select(CheckInResponse).join(Enrollment, Enrollment.id == CheckInResponse.enrollment_id)
            .where(Enrollment.participant_id == participant.id, CheckInResponse.follow_up_id.in_(answered)))}
    measures: dict[tuple[int, str], list] = {}
    if any(not f.is_checkin for f, _, _ in rows if f.id in answered):
        measures = _scores(db.session.scalars(select(OutcomeMeasure).where(
            OutcomeMeasure.participant_id == participant.id,
            OutcomeMeasure.timepoint.in_(list(SURVEY_TIMEPOINTS.values())))))
    out = []
    for f, cohort, message_sent_at in rows:
        item = OwnCheckIn(f, cohort, f.sent_at or message_sent_at, _state(f, now))
        if item.state == ANSWERED:
            if f.is_checkin and f.id in responses:
                item.wellbeing = responses[f.id].get("score")
                item.reach_out = bool(responses[f.id].get("reach_out"))
            elif not f.is_checkin:
                item.scores = _survey_scores(measures.get((f.enrollment_id, SURVEY_TIMEPOINTS[f.kind]), []))
        out.append(item)
    out.sort(key=lambda i: (ensure_utc(i.sent_at or i.follow_up.answered_at or i.follow_up.due_at), i.follow_up.id),
             reverse=True)
    audit.record("checkins.read", actor=participant, object_type="user", object_id=participant.id,
                 details={"follow_ups": len(out), "answered": len(answered)}, ctx=ctx, now=now)
    return out


def own_answers(participant: User, follow_up_id: int, *, now: datetime,
                ctx: RequestContext | None = None) -> OwnAnswers:
    """One of the participant's answered follow-ups with their answers. Anybody else's, one not
    answered, or none at all: ``NotFound`` (ids are not confirmed)."""
    rows = _delivered_rows(participant, follow_up_id=follow_up_id)
    if not rows or rows[0][0].status != FollowUpStatus.ANSWERED:
        raise NotFound("We could not find that check-in.")
    f, cohort, message_sent_at = rows[0]
    item = OwnCheckIn(f, cohort, f.sent_at or message_sent_at, ANSWERED)
    if f.is_checkin:
        row = db.session.scalar(select(CheckInResponse).where(CheckInResponse.follow_up_id == f.id,
                                                              CheckInResponse.enrollment_id == f.enrollment_id))
        if row is None:
            raise NotFound("We could not find that check-in.")
        answers = open_answers(row)
        item.wellbeing, item.reach_out = answers.get("score"), bool(answers.get("reach_out"))
        yes_no = dict(YES_NO)
        lines = [AnswerLine("How are you today? (1 = very hard, 10 = very well)", str(answers.get("score", ""))),
                 AnswerLine("How have you been sleeping?", dict(SLEEP_CHOICES).get(answers.get("sleep"), "")),
                 AnswerLine("Have you had any difficult experiences since the retreat?",
                            yes_no["yes" if answers.get("difficult") else "no"]),
                 AnswerLine("I would like someone to reach out to me", yes_no["yes" if item.reach_out else "no"])]
        low = item.wellbeing is not None and item.wellbeing <= LOW_SCORE
        result = OwnAnswers(item, [("Your answers", lines)], text=answers.get("text") or "",
                            needs_support=item.reach_out or low)
    else:
        measures = _scores(db.session.scalars(select(OutcomeMeasure).where(
            OutcomeMeasure.enrollment_id == f.enrollment_id, OutcomeMeasure.participant_id == participant.id,
            OutcomeMeasure.timepoint == SURVEY_TIMEPOINTS[f.kind]))).get((f.enrollment_id, SURVEY_TIMEPOINTS[f.kind]), [])
        item.scores = _survey_scores(measures)
        frequency = dict(screening.FREQUENCY_CHOICES)
        questions = {OutcomeInstrument.PHQ9.value: screening.PHQ9_ITEMS, OutcomeInstrument.GAD7.value: screening.GAD7_ITEMS}
        groups, needs_support = [], False
        for m, score in zip(measures, item.scores, strict=True):
            items = outcomes.open_scores(m)["items"]
            groups.append((score.label, [AnswerLine(q, frequency.get(v, str(v)))
                                         for q, v in zip(questions[m.instrument], items, strict=False)]))
            if m.instrument == OutcomeInstrument.PHQ9.value and len(items) >= 9 and items[8] > 0:
                needs_support = True
        result = OwnAnswers(item, groups, needs_support=needs_support)
    audit.record("checkins.read", actor=participant, object_type="follow_up", object_id=f.id,
                 details={"kind": f.kind}, ctx=ctx, now=now)
    return result
