"""What every demo module shares (the logins, the zone, the staff lookup), apart from ``demo``
itself so the demo modules do not import each other in a circle."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from retreat.accounts import users as accounts
from retreat.accounts.models import User

DEMO_PASSWORD = "retreat-demo-2026"

DEMO_USERS = [
    ("admin", "admin@demo.retreat", "Avery Admin", "America/Denver"),
    ("facilitator", "facilitator@demo.retreat", "Fern Facilitator", "America/Denver"),
    ("provider", "provider@demo.retreat", "Dr. Priya Provider", "America/Denver"),
    ("finance", "finance@demo.retreat", "Finn Finance", "America/New_York"),
    ("participant", "participant@demo.retreat", "Pat Participant", "Europe/Berlin"),
]
DEMO_ORG = "Front Range Medical Partners"
SEEDED_ACTION = "demo.seeded"
DEMO_RETREAT_SLUG = "colorado-mountain-retreat"
TZ = "America/Denver"


def staff(role: str) -> User | None:
    email = next(e for r, e, _, _ in DEMO_USERS if r == role)
    return accounts.get_by_email(email)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` in the demo retreat's zone, in UTC."""
    from retreat.timeutil import zone

    return datetime.combine(day, time(hour, minute), tzinfo=zone(TZ)).astimezone(UTC)
