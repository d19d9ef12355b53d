"""The demo catalog, made by staff through ``cohorts.catalog``: the retreat, its cohorts (each
opened, and the past ones completed, through ``set_status``), their sessions (the weekly
integration circles come from each cohort's integration plan, not from here) and the consent
documents."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cli.demo_base import DEMO_RETREAT_SLUG, TZ, local
from retreat.cli.demo_journeys import new_request
from retreat.cli.demo_texts import SUMMARY, refund_policy, retreat_description, retreat_included
from retreat.cohorts import catalog, preparation
from retreat.cohorts.models import Cohort, CohortStatus, DepositTiming, Retreat
from retreat.extensions import db
from retreat.payments.refund_policy import DEFAULT_SCHEDULE

PRICE_MINOR = 480000
DEPOSIT_MINOR = 75000
SPRING, EARLY_SPRING, AUTUMN, SUMMER = "Spring cohort", "Early spring cohort", "Autumn cohort", "Summer cohort"
DAYS = 6
# (day offset from the first day, kind, title, local hour, place, video link)
SCHEDULE = [
    (-7, "orientation", "Online orientation", 17, "", "https://meet.example.com/orientation"),
    (0, "ifs", "Opening circle", 17, "Main hall", ""),
    (1, "dosing", "First dosing session", 9, "Ceremony room", ""),
    (2, "ifs", "IFS group session", 10, "Main hall", ""),
    (3, "dosing", "Second dosing session", 9, "Ceremony room", ""),
    (5, "ifs", "Closing group session", 10, "Main hall", ""),
]
CONSENTS = [
    ("participation", "Consent to participate",
     "I understand that this retreat includes ketamine-assisted sessions administered and supervised by a "
     "licensed partner medical provider, not by the retreat facilitators.\n\nI agree to follow the "
     "preparation, fasting and safety instructions, to arrange a ride home or companion after dosing days, "
     "and to tell the team if I feel unsafe at any time."),
    ("group-agreements", "Group agreements",
     "What is shared in the group stays in the group. I will speak for myself, listen without fixing, and "
     "respect everyone's pace and boundaries."),
]


def demo_retreat() -> Retreat | None:
    return db.session.scalar(select(Retreat).where(Retreat.slug == DEMO_RETREAT_SLUG))


def cohort_named(title: str) -> Cohort | None:
    retreat = demo_retreat()
    if retreat is None:
        return None
    return db.session.scalar(select(Cohort).where(Cohort.retreat_id == retreat.id, Cohort.title == title))


def spring_cohort() -> Cohort | None:
    return cohort_named(SPRING)


def make_retreat(*, admin: User, now: datetime) -> Retreat:
    retreat = catalog.save_retreat(
        None, title="Colorado Mountain Retreat", slug=DEMO_RETREAT_SLUG, summary=SUMMARY,
        description=retreat_description(), location="Crestone, Colorado", included=retreat_included(),
        is_published=True, actor=admin, now=now)
    retreat.region, retreat.country = "CO", "US"  # where the dosing happens (the clinicians' licences)
    return retreat


def publish_consents(*, admin: User, now: datetime) -> None:
    for kind, title, body in CONSENTS:
        preparation.publish_consent(kind=kind, title=title, body=body, actor=admin, now=now)


def make_cohort(retreat: Retreat, title: str, first_day: date, *, capacity: int, org_id: int | None,
                facilitator: User, now: datetime, timing: DepositTiming = DepositTiming.BEFORE_CLEARANCE) -> Cohort:
    """A cohort saved and opened by the facilitator at ``now``, with the demo schedule's sessions."""
    data = catalog.CohortInput(
        title=title, starts_at=local(first_day, 15), ends_at=local(first_day + timedelta(days=DAYS), 11),
        timezone=TZ, capacity=capacity, currency="USD", price_minor=PRICE_MINOR, deposit_minor=DEPOSIT_MINOR,
        balance_due_on=first_day - timedelta(days=30), refund_policy=refund_policy(DEFAULT_SCHEDULE),
        deposit_timing=timing.value, provider_organization_id=org_id)
    new_request()
    cohort = catalog.save_cohort(None, retreat, data, actor=facilitator, now=now)
    for offset, kind, session_title, hour, place, video in SCHEDULE:
        day = first_day + timedelta(days=offset)
        new_request()
        catalog.add_session(cohort, kind=kind, title=session_title, starts_at=local(day, hour),
                            ends_at=local(day, hour + 2), location=place, video_url=video,
                            facilitator_id=facilitator.id, actor=facilitator, now=now)
    new_request()
    catalog.set_status(cohort, CohortStatus.OPEN.value, actor=facilitator, now=now)
    return cohort
