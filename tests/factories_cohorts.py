"""Factories for retreats, cohorts and enrollments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retreat.cohorts import enrollment
from retreat.cohorts.models import Cohort, CohortStatus, DepositTiming, Retreat
from retreat.extensions import db
from tests import factories

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def retreat(**kw) -> Retreat:
    i = factories.n()
    r = Retreat(slug=kw.pop("slug", f"retreat-{i}"), title=kw.pop("title", f"Mountain Retreat {i}"),
                summary=kw.pop("summary", "A week of IFS-informed group work."),
                description=kw.pop("description", "Long description."), location=kw.pop("location", "Colorado"),
                included=kw.pop("included", "Lodging\nMeals"), **kw)
    db.session.add(r)
    db.session.flush()
    return r


def new_request() -> None:
    """Start the next step as a new request: commit what came before (to the test's savepoint; the
    test still rolls back at the end), which ends its row locks, so that this step takes its own in
    ``core.locking.LOCK_ORDER`` (a cohort before its enrollments) as a real request does."""
    db.session.commit()


def cohort(retreat_obj: Retreat | None = None, *, capacity: int = 12, status=CohortStatus.OPEN,
           deposit_timing=DepositTiming.BEFORE_CLEARANCE, starts_at: datetime | None = None, **kw) -> Cohort:
    new_request()  # a new cohort is set up in a request of its own
    r = retreat_obj or retreat()
    start = starts_at or NOW + timedelta(days=60)
    c = Cohort(retreat=r, title=kw.pop("title", f"Spring cohort {factories.n()}"), starts_at=start,
               ends_at=kw.pop("ends_at", start + timedelta(days=6)), timezone=kw.pop("timezone", "America/Denver"),
               capacity=capacity, seats_taken=0, currency=kw.pop("currency", "USD"),
               price_minor=kw.pop("price_minor", 450000), deposit_minor=kw.pop("deposit_minor", 50000),
               status=str(status), deposit_timing=str(deposit_timing), hold_minutes=kw.pop("hold_minutes", 30),
               offer_hours=kw.pop("offer_hours", 48), **kw)
    db.session.add(c)
    db.session.flush()
    return c


def applicant(c: Cohort, *, now: datetime = NOW, partner_email: str | None = None, **user_kw):
    user_kw.setdefault("password", None)  # no password hashing: keeps tests fast
    person = factories.user("participant", **user_kw)
    new_request()  # applying is a request of its own: it locks the cohort first
    return enrollment.apply(c, person, now=now, partner_email=partner_email)


def cleared(c: Cohort, *, now: datetime = NOW, **kw):
    """An applicant cleared by the partner provider (a decided clearance the clearance gate accepts)."""
    enr = applicant(c, now=now, **kw)
    record_clearance(enr, now=now)
    enrollment.submit_intake(enr, now=now, actor=None)
    enrollment.request_clearance(enr, now=now, actor=None)
    enrollment.mark_cleared(enr, now=now, actor=None)
    return enr


def record_clearance(enr, *, now: datetime = NOW, valid_until: datetime | None = None,
                     license_expires_on=None):
    """The rows a provider's "cleared" decision leaves (an intake and a decided request), without
    moving the enrollment: what ``retreat.clinical.clearance_validity`` reads."""
    from retreat.clinical.models import ClearanceRequest, Intake

    c = enr.cohort
    org_id = c.provider_organization_id or factories.provider_org().id
    intake = Intake(enrollment_id=enr.id, participant_id=enr.participant_id, status="submitted", submissions=1,
                    safety_concern=False, submitted_at=now, created_at=now, updated_at=now)
    db.session.add(intake)
    db.session.flush()
    req = ClearanceRequest(enrollment_id=enr.id, intake_id=intake.id, organization_id=org_id, status="decided",
                           decision="cleared", renewal=False, referred_at=now, due_at=now, decided_at=now,
                           version=2, license_expires_on=license_expires_on or (now + timedelta(days=730)).date(),
                           valid_until=valid_until or c.ends_at + timedelta(days=1), closed_at=now,
                           conditions_shareable=False, absolute_override=False, created_at=now, updated_at=now)
    db.session.add(req)
    db.session.flush()
    return req


def bare_enrollment(c: Cohort, *, now: datetime = NOW):
    """An applied enrollment without checklist or reminders (fast set-up for concurrency tests)."""
    from retreat.cohorts.models import Enrollment

    person = factories.user("participant", password=None)
    e = Enrollment(cohort_id=c.id, participant_id=person.id, status="applied", seat="none", applied_at=now,
                   holds_taken=0, offers_made=0, motivation="", lodging="")
    db.session.add(e)
    db.session.flush()
    return e


from tests.conftest import login_as as login  # noqa: E402,F401
from tests.conftest import signed_in as client_for  # noqa: E402,F401
