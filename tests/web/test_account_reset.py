"""Forgot password / reset: no enumeration, expiring single-use links, clear messages."""

from __future__ import annotations

from datetime import timedelta

from retreat.accounts import passwords
from retreat.accounts import tokens as account_tokens
from retreat.accounts import users as accounts
from retreat.messaging import sealed
from retreat.timeutil import now_utc
from tests import factories
from tests.web.account_helpers import audit_actions, link_path, queued, signed_in

NEW = "a-brand-new-password"
SAME_ANSWER = "If an account exists for that address, we have sent a link"


def _request_link(client, email: str) -> str:
    r = client.post("/account/forgot-password", data={"email": email})
    assert r.status_code == 200 and SAME_ANSWER in r.get_data(as_text=True)
    return link_path(sealed.context_of(queued("password_reset", email.lower())[-1])["reset_url"])


def test_unknown_and_known_email_get_the_same_answer(client, db):
    factories.user(email="known@example.com")
    known = client.post("/account/forgot-password", data={"email": "KNOWN@example.com"})
    unknown = client.post("/account/forgot-password", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert SAME_ANSWER in known.get_data(as_text=True) and SAME_ANSWER in unknown.get_data(as_text=True)
    assert [m.recipient_email for m in queued("password_reset")] == ["known@example.com"]


def test_reset_sets_password_logs_out_everywhere_and_notifies(app, client, db):
    user = factories.user(email="rae@example.com", name="Rae")
    other_device = signed_in(app, user)
    path = _request_link(client, "rae@example.com")
    msg = queued("password_reset")[0]
    assert msg.context["name"] == "Rae" and msg.context["expires_minutes"] == 60
    assert client.get(path).status_code == 200
    r = client.post(path, data={"password": NEW, "confirm": NEW})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login")
    assert passwords.verify_password(user, NEW) and not passwords.verify_password(user, factories.PASSWORD)
    assert other_device.get("/account/settings").status_code == 302  # session ended
    [notice] = queued("password_changed")
    assert notice.recipient_email == "rae@example.com" and notice.context["name"] == "Rae"
    assert {"user.password_changed", "user.password_reset"} <= set(audit_actions(user.id))
    assert client.post("/account/login", data={"email": "rae@example.com", "password": NEW}).status_code == 302


def test_reused_link_is_refused_and_changes_nothing(client, db):
    user = factories.user(email="once@example.com")
    path = _request_link(client, "once@example.com")
    assert client.post(path, data={"password": NEW, "confirm": NEW}).status_code == 302
    r = client.post(path, data={"password": "yet-another-password", "confirm": "yet-another-password"})
    assert r.status_code == 400 and "already been used" in r.get_data(as_text=True)
    assert passwords.verify_password(user, NEW)
    assert client.get(path).status_code == 400


def test_link_dies_after_any_other_password_change(client, db):
    user = factories.user(email="change@example.com")
    path = _request_link(client, "change@example.com")
    accounts.set_password(user, "changed-elsewhere-1")
    r = client.post(path, data={"password": NEW, "confirm": NEW})
    assert r.status_code == 400 and passwords.verify_password(user, "changed-elsewhere-1")


def test_expired_link_is_refused_and_changes_nothing(app, client, db):
    user = factories.user(email="slow@example.com")
    old = now_utc() - timedelta(seconds=app.config["PASSWORD_RESET_MAX_AGE"] + 5)
    token = account_tokens.make_reset_token(user, now=old)
    r = client.post(f"/account/reset-password/{token}", data={"password": NEW, "confirm": NEW})
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    assert passwords.verify_password(user, factories.PASSWORD)
    assert queued("password_changed") == []


def test_tampered_link_is_refused(client, db):
    user = factories.user(email="tamper@example.com")
    path = _request_link(client, "tamper@example.com")
    r = client.post(path + "x", data={"password": NEW, "confirm": NEW})
    assert r.status_code == 400 and "not valid" in r.get_data(as_text=True)
    # A verify-email token is not a reset token (own salt).
    verify = account_tokens.make_verify_token(user)
    assert client.get(f"/account/reset-password/{verify}").status_code == 400
    assert passwords.verify_password(user, factories.PASSWORD)


def test_short_or_mismatched_new_password_is_refused(client, db):
    user = factories.user(email="weak@example.com")
    path = _request_link(client, "weak@example.com")
    r = client.post(path, data={"password": "short", "confirm": "short"})
    assert r.status_code == 422 and "at least 10 characters" in r.get_data(as_text=True)
    r = client.post(path, data={"password": NEW, "confirm": NEW + "!"})
    assert r.status_code == 422 and "do not match" in r.get_data(as_text=True)
    assert passwords.verify_password(user, factories.PASSWORD)
    assert client.post(path, data={"password": NEW, "confirm": NEW}).status_code == 302  # link still good


def test_forgot_password_with_malformed_email_shows_field_error(client, db):
    r = client.post("/account/forgot-password", data={"email": "nope"})
    assert r.status_code == 422 and "valid email address" in r.get_data(as_text=True)
