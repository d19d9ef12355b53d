"""Demo data for `make run`, made the way real use makes it.

Every object goes through the rules a person would go through on the site: the catalog
(``cohorts.catalog``), applications, intakes and the provider's decisions under a valid licence,
consents and preparation, payments and refunds through the Stripe webhook processing
(``demo_money``), circles from the integration plan, check-ins answered through their links
(``demo_followups``). So the roster, the participant's pages and the finance pages agree: they
read the same records.

Idempotent: a second run finds the finished demo (the ``demo.seeded`` audit event) and changes
nothing; a run that stopped part way is refused with a clear message (reset the database).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import ProviderOrganization, Role
from retreat.audit.models import AuditEvent
from retreat.cli.demo_base import (  # noqa: F401  (re-exported: demo.DEMO_USERS, demo.staff, ...)
    DEMO_ORG,
    DEMO_PASSWORD,
    DEMO_RETREAT_SLUG,
    DEMO_USERS,
    SEEDED_ACTION,
    TZ,
    local,
    staff,
)
from retreat.core.errors import Conflict
from retreat.extensions import db


def seed(*, online: bool | None = None, now: datetime | None = None) -> list[tuple[str, str]]:
    """Load the demo. ``online``: pay through the configured Stripe (default: when it answers)."""
    from retreat.cli import demo_catalog, demo_cohorts, demo_followups, demo_guide, demo_money
    from retreat.timeutil import now_utc

    logins = [(role, email) for role, email, _, _ in DEMO_USERS]
    if db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == SEEDED_ACTION).limit(1)):
        return logins  # already seeded: nothing to do
    if demo_catalog.demo_retreat() is not None:
        raise Conflict("The demo data is incomplete: an earlier seed-demo stopped part way. Reset the database "
                       "(delete the instance's SQLite file or drop the database) and run it again.")
    now = now or now_utc()
    org = seed_staff()
    seed_consult_availability()
    payer = demo_money.Payer(online=demo_money.stripe_reachable() if online is None else online, started_at=now)
    demo_cohorts.seed_cohorts(org, now=now, payer=payer)
    seed_dosing_demo(org, now=now)
    demo_followups.seed_followups_demo(now=now, payer=payer)
    demo_guide.attach_program_guide(demo_catalog.demo_retreat(), actor=staff("admin"), now=now)
    run = payer.reconcile(now=now_utc(), actor=staff("finance"))
    audit.record(SEEDED_ACTION, actor=None, object_type="retreat", object_id=demo_catalog.demo_retreat().id,
                 details={"stripe": "online" if payer.online else "offline", "payments": len(payer.payments),
                          "reconciliation_run": run.id if run is not None else None}, now=now)
    return logins




def seed_staff(*, password: str | None = DEMO_PASSWORD) -> ProviderOrganization:
    """The demo organisation and the five demo logins (the provider with a licence valid for two years)."""
    org = db.session.scalar(select(ProviderOrganization).where(ProviderOrganization.name == DEMO_ORG))
    if org is None:
        org = accounts.create_provider_organization(DEMO_ORG, contact_email="clinic@demo.retreat")
    for role, email, name, tz in DEMO_USERS:
        if accounts.get_by_email(email) is not None:
            continue
        user = accounts.create_user(email=email, name=name, role=role, password=password, tz=tz, verified=True,
                                    provider_organization=org if role == Role.PROVIDER else None)
        if role == Role.PROVIDER:
            # Licensed since long before the demo's oldest cohort (a licence has no start date).
            accounts.add_license(user, number="DR.0061234", state="CO",
                                 expires_on=date.today() + timedelta(days=365 * 2))
    return org


def circles_in_plan() -> str:
    from retreat.cli.demo_texts import circles_in_plan as words

    return words()


# --------------------------------------------------------------------------------------------
# Dosing day: the demo provider staffs the Spring cohort's dosing sessions
# --------------------------------------------------------------------------------------------


def seed_dosing_demo(org: ProviderOrganization, now=None) -> None:
    """The demo provider staffs the open Spring cohort's dosing sessions. Of its confirmed
    participants the first (Alex) is ready for dosing: cleared under the provider's licence,
    consents signed, fasting acknowledged, ride home (Sam Rivera, +1 303 555 0199) and emergency
    contact given; the second (Blair) is not: no ride home. Their clearance, consents and checklist
    come from their journeys (``demo_cohorts``). Idempotent: nothing is added once staffed."""
    from retreat.cli.demo_catalog import spring_cohort
    from retreat.clinical import staffing
    from retreat.clinical.dosing_models import DosingAssignment
    from retreat.cohorts.models import CohortSession, SessionKind

    provider = staff("provider")
    cohort = spring_cohort()
    if provider is None or cohort is None:
        return
    sessions = list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == SessionKind.DOSING).order_by(CohortSession.starts_at)))
    if not sessions or db.session.scalar(select(DosingAssignment.id).where(
            DosingAssignment.session_id == sessions[0].id)):
        return
    for s in sessions:
        db.session.commit()  # each assignment is a request of its own (its own locks)
        staffing.assign(s, provider, actor=provider)


DEMO_CONSULT_HOURS = "09:00-12:00, 13:00-17:00"  # Monday to Friday, America/Denver


def seed_consult_availability() -> None:
    """The demo facilitator takes free consults on weekdays, so the booking page has times."""
    from retreat.consults import publishing

    facilitator = accounts.get_by_email("facilitator@demo.retreat")
    if facilitator is None or publishing.get_settings(facilitator) is not None:
        return
    publishing.update_settings(
        facilitator, tz="America/Denver", duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
        min_notice_minutes=12 * 60, horizon_days=60, daily_cap=8, slot_interval_minutes=30, change_cutoff_hours=24,
        video_link="https://meet.example.com/open-meadow-fern", accepting_bookings=True)
    publishing.set_weekly_rules(facilitator, {weekday: DEMO_CONSULT_HOURS for weekday in range(5)})


