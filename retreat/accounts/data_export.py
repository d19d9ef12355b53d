"""The account's part of a person's data export: their profile and their sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat.accounts.calendar_feeds import CalendarFeed
from retreat.accounts.models import User
from retreat.accounts.sessions import UserSession
from retreat.core import personal_data
from retreat.extensions import db


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def account_section(person: User, **_) -> dict:
    """Profile and preferences; each sign-in session (device, address, when; never its token)."""
    sessions = db.session.scalars(select(UserSession).where(UserSession.user_id == person.id)
                                  .order_by(UserSession.created_at, UserSession.id))
    return {
        "account": {"name": person.name, "email": person.email, "time_zone": person.tz, "phone": person.phone,
                    "role": person.role, "created_at": _iso(person.created_at),
                    "email_verified_at": _iso(person.email_verified_at), "last_sign_in_at": _iso(person.last_login_at),
                    "two_factor_enabled": person.totp_enabled_at is not None,
                    "marketing_emails_opted_out": bool(person.marketing_opt_out)},
        "calendar_subscriptions": [{"created_at": _iso(f.created_at), "last_fetched_at": _iso(f.last_fetched_at),
                                    "turned_off_at": _iso(f.revoked_at)} for f in db.session.scalars(
            select(CalendarFeed).where(CalendarFeed.user_id == person.id).order_by(CalendarFeed.id))],
        "sign_in_sessions": [{"started_at": _iso(s.created_at), "last_seen_at": _iso(s.last_seen_at),
                              "ended_at": _iso(s.revoked_at), "ended_because": s.revoked_reason, "device": s.device,
                              "ip_address": s.ip} for s in sessions],
    }


personal_data.register_section("account", account_section, title="Your account", covers=("users", "user_sessions", "calendar_feeds"),
                               order=10)
