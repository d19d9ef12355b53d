"""Follow-ups: a completed Summer cohort (Pat, the demo participant, among them) walked through the
rules like the others, whose check-ins and questionnaires were sent by the outbox dispatcher when
they were due and answered through their links (``integration.checkins.answer``), so the outcome
charts, response rates and alerts panel show something. The facilitator followed up on the alerts
of low check-ins; one unanswered 72-hour check-in is still open. The Autumn cohort answered its
check-ins and the questionnaires due so far.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from retreat.cli import demo_catalog as cat
from retreat.cli import demo_cohorts
from retreat.cli.demo_base import staff
from retreat.cli.demo_journeys import new_request, spread
from retreat.cli.demo_money import Payer
from retreat.clinical import screening
from retreat.cohorts.models import Cohort, Enrollment, EnrollmentStatus
from retreat.extensions import db
from retreat.integration import checkins, followups, links
from retreat.integration.followup_models import FollowUp, FollowUpStatus, IntegrationAlert
from retreat.messaging import dispatcher
from retreat.timeutil import zone

SUMMER_COHORT = cat.SUMMER
SUMMER_PEOPLE = ["Sasha Lind", "Theo Marsh", "Uma Castillo", "Vic Osei", "Wren Holloway", "Xavi Duarte",
                 "Yara Keane", "Zane Whitfield", "Ana Lucero"]
# PHQ-9 and GAD-7 totals per person at baseline, post, 1 month, 3 months (None: not answered).
SUMMER_SCORES = [
    ((16, 9, 8, 6), (14, 8, 7, 6)), ((12, 8, 9, 7), (11, 7, 7, 5)), ((19, 11, 10, 9), (16, 10, 9, 8)),
    ((10, 6, 5, None), (9, 5, 5, None)), ((14, 10, 7, 6), (15, 9, 8, 7)), ((8, 6, 6, 5), (10, 7, 6, 6)),
    ((17, 12, None, 10), (13, 9, None, 8)), ((11, 5, 4, 4), (12, 6, 5, 4)), ((15, 9, 8, None), (12, 8, 6, None)),
    ((13, 7, 6, 5), (11, 6, 5, 4)),
]
# The 24-hour and 72-hour check-in scores (0-10) per person (None: not answered).
CHECKIN_SCORES = [(7, 8), (6, 7), (4, 6), (8, 9), (5, 3), (7, 8), (6, None), (9, 9), (6, 7), (8, 8)]
SURVEYS = ("survey_post", "survey_month_1", "survey_month_3")


def seed_followups_demo(*, now: datetime, payer: Payer) -> None:
    retreat = cat.demo_retreat()
    if retreat is None or cat.cohort_named(SUMMER_COHORT) is not None:
        return
    facilitator, provider = staff("facilitator"), staff("provider")
    today = now.astimezone(zone(cohorts_tz())).date()
    summer = cat.make_cohort(retreat, SUMMER_COHORT, today - timedelta(days=125), capacity=10,
                             org_id=provider.provider_organization_id, facilitator=facilitator,
                             now=now - timedelta(days=260))
    people = [p for p in [staff("participant")] if p is not None]
    people += [demo_cohorts.guest(i, name, prefix="summer") for i, name in enumerate(SUMMER_PEOPLE, start=1)]
    scores = dict(zip([p.id for p in people], zip(SUMMER_SCORES[-len(people):], CHECKIN_SCORES[-len(people):],
                                                  strict=True), strict=True))
    demo_cohorts.walk_past_cohort(summer, people, provider=provider, facilitator=facilitator, payer=payer,
                                  baselines={pid: (phq[0], gad[0]) for pid, ((phq, gad), _) in scores.items()})
    autumn = cat.cohort_named(cat.AUTUMN)
    answer_followups(summer, scores, facilitator=facilitator, now=now)
    if autumn is not None:
        answer_followups(autumn, {}, facilitator=facilitator, now=now)
    new_request()
    followups.sweep_unanswered(now)


def cohorts_tz() -> str:
    from retreat.cli.demo_base import TZ

    return TZ


def _survey_form(phq: int, gad: int) -> dict:
    form = dict(zip(screening.PHQ9_KEYS, map(str, spread(phq, 9, last_zero=True)), strict=True))
    form.update(zip(screening.GAD7_KEYS, map(str, spread(gad, 7)), strict=True))
    return form


def _checkin_form(score: int) -> dict:
    return {"score": str(score), "sleep": "well" if score >= 7 else "some_trouble",
            "difficult": "yes" if score < 6 else "no", "reach_out": "yes" if score <= 3 else "", "text": ""}


def answer_followups(cohort: Cohort, scores: dict, *, facilitator, now: datetime) -> None:
    """Each follow-up due before ``now`` is sent when due (the outbox dispatcher at that moment) and
    answered two hours later, as ``scores`` says (people without scores answer everything with the
    demo's middle answers); alerts they raise are acknowledged by the facilitator 40 minutes later."""
    rows = list(db.session.scalars(select(FollowUp).join(Enrollment, Enrollment.id == FollowUp.enrollment_id)
                                   .where(Enrollment.cohort_id == cohort.id,
                                          Enrollment.status == EnrollmentStatus.COMPLETED.value)
                                   .order_by(FollowUp.due_at, FollowUp.id)))
    for due in sorted({f.due_at for f in rows if f.due_at < now}):
        new_request()
        dispatcher.dispatch_due(now=due)
    for idx, f in enumerate(rows):
        if f.due_at >= now or f.status not in (FollowUpStatus.SCHEDULED.value, FollowUpStatus.SENT.value):
            continue
        participant_id = f.enrollment.participant_id
        (phq, gad), (c24, c72) = scores.get(participant_id, (((9, 7, 6, 5), (8, 6, 5, 4)), (7, 7)))
        if f.kind == "checkin_24h":
            value, form = c24, _checkin_form(c24) if c24 is not None else None
        elif f.kind == "checkin_72h":
            value, form = c72, _checkin_form(c72) if c72 is not None else None
        else:
            t = 1 + SURVEYS.index(f.kind)
            value, form = phq[t], _survey_form(phq[t], gad[t]) if phq[t] is not None else None
        if value is None:
            continue
        at = f.due_at + timedelta(hours=2 + idx % 5)
        new_request()
        result = checkins.answer(links.token_for(f), form, now=at)
        for alert in db.session.scalars(select(IntegrationAlert).where(
                IntegrationAlert.follow_up_id == result.follow_up.id)):
            new_request()
            followups.acknowledge(alert.id, facilitator, now=at + timedelta(minutes=40))
