"""Admin messages page: failed first, retry (audited, CSRF) and cancel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from retreat.messaging import outbox
from retreat.models import AuditEvent, OutboxMessage
from retreat.timeutil import now_utc
from tests import factories


def signed_in(app, role):
    """A client signed in through the login form."""
    user = factories.user(role)
    c = app.test_client()
    assert c.post("/account/login", data={"email": user.email, "password": factories.PASSWORD}).status_code == 302
    c.user = user
    return c


def _msg(key, status, **kw):
    m = outbox.enqueue(template="test_notice", dedupe_key=key, to_email=f"{key}@example.com")
    m.status = status
    for k, v in kw.items():
        setattr(m, k, v)
    return m


@pytest.mark.parametrize("role", ["facilitator", "finance", "participant"])
def test_only_admins_see_messages(app, db, role):
    # One signed-in client per test: the test's app context (and Flask-Login's g) spans requests.
    assert signed_in(app, role).get("/admin/messages").status_code == 403


def test_anonymous_is_sent_to_login(client):
    assert client.get("/admin/messages").status_code == 302


def test_failed_first_with_attempts_and_last_error(db, app):
    _msg("pending-one", "pending")
    _msg("sent-one", "sent", sent_at=now_utc(), attempts=1)
    _msg("failed-one", "failed", attempts=6, last_error="gave up after 6 attempts: 451 Mailbox busy")
    db.session.commit()
    admin = signed_in(app, "admin")
    page = admin.get("/admin/messages")
    assert page.status_code == 200
    html = page.text
    assert html.index("failed-one@example.com") < html.index("pending-one@example.com") < html.index("sent-one@example.com")
    assert "451 Mailbox busy" in html and "Failed (1)" in html
    only_failed = admin.get("/admin/messages?status=failed").text
    assert "failed-one@example.com" in only_failed and "pending-one@example.com" not in only_failed
    assert admin.get("/admin/messages?status=bogus").status_code == 400
    assert "sent-one@example.com" in admin.get("/admin/messages?q=sent-one").text


def test_retry_resets_a_failed_message_to_pending_now_and_is_audited(db, app):
    m = _msg("to-retry", "failed", attempts=6, last_error="550 No such mailbox",
             next_attempt_at=now_utc() - timedelta(days=2))
    db.session.commit()
    admin = signed_in(app, "admin")
    resp = admin.post(f"/admin/messages/{m.id}/retry?status=failed", follow_redirects=True)
    assert resp.status_code == 200 and f"Message {m.id} to to-retry@example.com is queued again." in resp.text
    db.session.refresh(m)
    assert m.status == "pending" and m.attempts == 0
    assert abs((m.next_attempt_at - now_utc()).total_seconds()) < 60
    ev = db.session.query(AuditEvent).filter_by(action="messages.retry", object_id=str(m.id)).one()
    assert ev.actor_id == admin.user.id and "550" in ev.details["previous_error"]

    # A sent message cannot be retried; the page says why and nothing changes.
    sent = _msg("already-sent", "sent", sent_at=now_utc())
    db.session.commit()
    resp = admin.post(f"/admin/messages/{sent.id}/retry", follow_redirects=True)
    assert "Only failed messages can be retried" in resp.text
    db.session.refresh(sent)
    assert sent.status == "sent"
    assert admin.post("/admin/messages/999999/retry", follow_redirects=True).status_code == 200


def test_cancel_a_pending_message(db, app):
    m = _msg("to-cancel", "pending")
    db.session.commit()
    admin = signed_in(app, "admin")
    admin.post(f"/admin/messages/{m.id}/cancel")
    db.session.refresh(m)
    assert m.status == "cancelled" and m.cancelled_at is not None
    assert db.session.query(AuditEvent).filter_by(action="messages.cancel", object_id=str(m.id)).count() == 1


def test_retry_needs_the_csrf_token(app, db, monkeypatch):
    m = _msg("csrf", "failed", last_error="x")
    db.session.commit()
    admin = signed_in(app, "admin")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    assert admin.post(f"/admin/messages/{m.id}/retry").status_code == 400
    db.session.refresh(m)
    assert m.status == "failed"
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/messages").text).group(1)
    assert admin.post(f"/admin/messages/{m.id}/retry", data={"csrf_token": token}).status_code == 302
    db.session.refresh(m)
    assert m.status == "pending"
    assert db.session.query(OutboxMessage).filter_by(status="pending").count() == 1
