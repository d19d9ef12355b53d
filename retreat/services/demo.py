"""Demo data for `make run`. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from retreat.extensions import db
from retreat.models import ProviderOrganization, Role
from retreat.services import accounts

DEMO_PASSWORD = "retreat-demo-2026"

DEMO_USERS = [
    ("admin", "admin@demo.retreat", "Avery Admin", "America/Denver"),
    ("facilitator", "facilitator@demo.retreat", "Fern Facilitator", "America/Denver"),
    ("provider", "provider@demo.retreat", "Dr. Priya Provider", "America/Denver"),
    ("finance", "finance@demo.retreat", "Finn Finance", "America/New_York"),
    ("participant", "participant@demo.retreat", "Pat Participant", "Europe/Berlin"),
]
DEMO_ORG = "Front Range Medical Partners"


def seed() -> list[tuple[str, str]]:
    org = db.session.scalar(select(ProviderOrganization).where(ProviderOrganization.name == DEMO_ORG))
    if org is None:
        org = accounts.create_provider_organization(DEMO_ORG, contact_email="clinic@demo.retreat")
    logins = []
    for role, email, name, tz in DEMO_USERS:
        user = accounts.get_by_email(email)
        if user is None:
            user = accounts.create_user(email=email, name=name, role=role, password=DEMO_PASSWORD, tz=tz,
                                        verified=True, provider_organization=org if role == Role.PROVIDER else None)
            if role == Role.PROVIDER:
                accounts.add_license(user, number="DR.0061234", state="CO",
                                     expires_on=date.today() + timedelta(days=365 * 2))
        logins.append((role, email))
    seed_consult_availability()
    return logins


DEMO_CONSULT_HOURS = "09:00-12:00, 13:00-17:00"  # Monday to Friday, America/Denver


def seed_consult_availability() -> None:
    """The demo facilitator takes free consults on weekdays, so the booking page has times."""
    from retreat.services import consults

    facilitator = accounts.get_by_email("facilitator@demo.retreat")
    if facilitator is None or consults.get_settings(facilitator) is not None:
        return
    consults.update_settings(
        facilitator, tz="America/Denver", duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
        min_notice_minutes=12 * 60, horizon_days=60, daily_cap=8, slot_interval_minutes=30, change_cutoff_hours=24,
        video_link="https://meet.example.com/open-meadow-fern", accepting_bookings=True)
    consults.set_weekly_rules(facilitator, {weekday: DEMO_CONSULT_HOURS for weekday in range(5)})
