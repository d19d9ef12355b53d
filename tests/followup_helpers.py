"""Set-up shared by the follow-up tests: a cohort whose last dosing session ends at a known time,
its facilitator, and confirmed participants (whose follow-ups the seat confirmation schedules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, SessionKind
from retreat.extensions import db
from retreat.integration import links
from retreat.integration.followup_models import FollowUp
from retreat.models import OutboxMessage
from tests import factories
from tests import factories_cohorts as fc

NOW = fc.NOW  # 2026-03-01 12:00 UTC
# The last dosing session ends 3 May 2026 19:00 UTC (13:00 MDT): the plan's anchor.
DOSING_END = datetime(2026, 5, 3, 19, 0, tzinfo=UTC)
DUE = {
    "checkin_24h": datetime(2026, 5, 4, 19, 0, tzinfo=UTC),  # 13:00 MDT
    "checkin_72h": datetime(2026, 5, 6, 19, 0, tzinfo=UTC),
    "survey_post": datetime(2026, 5, 4, 16, 0, tzinfo=UTC),  # 10:00 MDT the next local day
    "survey_month_1": datetime(2026, 6, 3, 16, 0, tzinfo=UTC),
    "survey_month_3": datetime(2026, 8, 3, 16, 0, tzinfo=UTC),
}


@dataclass
class Setup:
    cohort: Cohort
    facilitator: object
    dosing: CohortSession


def setup(dosing_end: datetime = DOSING_END, **cohort_kw) -> Setup:
    """A cohort (Denver) whose last dosing session ends at ``dosing_end`` (default: the fixed DUE times).

    Pass ``dosing_end`` relative to the real clock for pages and browser tests, which use it."""
    c = fc.cohort(starts_at=dosing_end - timedelta(days=3, hours=3), ends_at=dosing_end + timedelta(days=3),
                  timezone="America/Denver", **cohort_kw)
    facilitator = factories.user("facilitator", password=None, name="Fern Facilitator")
    dosing = CohortSession(cohort_id=c.id, kind=SessionKind.DOSING.value, title="Dosing",
                           starts_at=dosing_end - timedelta(hours=4), ends_at=dosing_end, location="Lodge",
                           video_url="", facilitator_id=facilitator.id)
    db.session.add(dosing)
    db.session.flush()
    return Setup(c, facilitator, dosing)


def confirmed(s: Setup, *, now: datetime = NOW, **user_kw) -> Enrollment:
    enr = fc.applicant(s.cohort, now=now, **user_kw)
    seats.take_hold(enr, now=now, actor=None)
    enrollment.confirm_seat(enr, now=now, actor=None)
    db.session.flush()
    return enr


def followups_of(enr: Enrollment) -> dict[str, FollowUp]:
    db.session.flush()
    return {f.kind: f for f in db.session.scalars(select(FollowUp).where(FollowUp.enrollment_id == enr.id))}


def message_of(f: FollowUp) -> OutboxMessage:
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f.outbox_dedupe_key))


def token_of(f: FollowUp) -> str:
    """The answer link's token (what its email carries; the outbox keeps it sealed until sent)."""
    return links.token_for(f)
