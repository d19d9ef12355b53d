"""Helpers shared by the consult tests (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime

from retreat.consults import booking as bookings
from retreat.consults import publishing
from retreat.extensions import db
from tests import factories

BASE_URL = "http://localhost"
# Monday 2026-06-01, 06:00 in Denver.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = dict(duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10, min_notice_minutes=12 * 60,
                horizon_days=60, daily_cap=None, slot_interval_minutes=30, change_cutoff_hours=24,
                video_link="https://video.example.com/room-1", accepting_bookings=True)


def facilitator_with_hours(*, tz: str = "America/Denver", hours: str = "09:00-17:00", days=range(7),
                           name: str | None = None, **settings):
    """A facilitator taking consults; committed, so that a view's rollback after a refusal keeps it
    (in the ``db`` fixture a commit only releases a savepoint of the test's transaction)."""
    fac = factories.user("facilitator", tz=tz, name=name, password=None)  # no slow hashing
    publishing.update_settings(fac, tz=tz, **{**SETTINGS, **settings})
    publishing.set_weekly_rules(fac, {d: hours for d in days})
    db.session.commit()
    return fac


def around_the_clock_facilitator(**kw):
    """Free every day 00:00-24:00 UTC with one hour's notice: tests do not depend on when they run."""
    kw.setdefault("tz", "UTC")
    kw.setdefault("hours", "00:00-24:00")
    kw.setdefault("min_notice_minutes", 60)
    return facilitator_with_hours(**kw)


def guest(**kw) -> dict:
    data = dict(name="Grace Guest", email="grace@example.com", phone="+1 303 555 0100", tz="America/New_York",
                reason="I am curious whether a retreat could help.", heard_from="A friend or family member",
                answers={})
    data.update(kw)
    return data


def book(start, *, now=NOW, facilitator_id=None, **kw):
    return bookings.book(start=start, facilitator_id=facilitator_id, base_url=BASE_URL, now=now, **guest(**kw))


def claim_token(consult) -> str:
    """The "this was me" token of a guest booking, from its queued confirmation email."""
    from sqlalchemy import select

    from retreat.messaging import sealed
    from retreat.messaging.models import OutboxMessage

    row = db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.dedupe_key == f"consult-{consult.id}-s0-confirmation"))
    return sealed.context_of(row)["claim_url"].rsplit("/", 1)[1]


def confirm_as_owner(consult, now=NOW):
    """The email's owner follows the link: the booking joins their history."""
    from retreat.consults import claims

    db.session.commit()  # its own request (and transaction) in real life: the locks start afresh
    return claims.confirm_owner(claim_token(consult), now=now)[0]


from tests.conftest import signed_in  # noqa: E402,F401  (re-exported for consult tests)
