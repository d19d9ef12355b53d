"""Shared helpers for the account tests: queued emails and the links inside them."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from retreat.extensions import db
from retreat.models import AuditEvent, OutboxMessage

STRONG = "a-calm-long-password"


def queued(template: str, email: str | None = None) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id)
    if email:
        stmt = stmt.where(OutboxMessage.recipient_email == email)
    return list(db.session.scalars(stmt))


def link_path(url: str) -> str:
    """The path of an emailed link (BASE_URL is http://localhost in tests)."""
    assert url.startswith("http://localhost/"), url
    return urlsplit(url).path


def audit_actions(user_id: int | None = None) -> list[str]:
    stmt = select(AuditEvent.action).order_by(AuditEvent.id)
    if user_id is not None:
        stmt = stmt.where(AuditEvent.object_id == str(user_id))
    return list(db.session.scalars(stmt))


def signup_form(**overrides) -> dict:
    data = {"name": "Robin Rivers", "email": "robin@example.com", "password": STRONG, "confirm": STRONG,
            "tz": "America/Denver", "agree": "y"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def signed_in(app, user, password: str | None = None):
    """A test client signed in through the real login form (password step only)."""
    from tests import factories

    c = app.test_client()
    r = c.post("/account/login", data={"email": user.email, "password": password or factories.PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    c.user = user
    return c
