"""Forgot password / reset: no enumeration, expiring single-use links, clear messages."""

from __future__ import annotations

from datetime import timedelta

from retreat.accounts import passwords
from retreat.accounts import tokens as account_tokens
from retreat.accounts import users as accounts
from retreat.messaging import sealed
from retreat.timeutil import now_utc
from tests import factories
from tests.links import follow_link, open_link
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
    page_url, page = follow_link(client, path)
    assert page_url == "/account/reset-password" and page.status_code == 200
    assert path.rsplit("/", 1)[1] not in page.get_data(as_text=True)  # not in the form's action either
    r = client.post(page_url, data={"password": NEW, "confirm": NEW})
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
    page = open_link(client, path)
    assert client.post(page, data={"password": NEW, "confirm": NEW}).status_code == 302
    # the same browser again (the reset forgot the link), and one that kept a copy of its cookie
    assert client.post(page, data={"password": "yet-another-password",
                                   "confirm": "yet-another-password"}).status_code == 400
    r = client.get(path)
    assert r.status_code == 400 and "already been used" in r.get_data(as_text=True)
    assert passwords.verify_password(user, NEW)


def test_a_copied_cookie_holding_a_used_link_is_refused(app, client, db):
    user = factories.user(email="copy@example.com")
    path = _request_link(client, "copy@example.com")
    page = open_link(client, path)
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert client.post(page, data={"password": NEW, "confirm": NEW}).status_code == 302
    r = copy.post(page, data={"password": "yet-another-password", "confirm": "yet-another-password"})
    assert r.status_code == 400 and "already been used" in r.get_data(as_text=True)
    assert passwords.verify_password(user, NEW)


def test_the_link_opens_twice_and_without_it_the_page_says_what_to_do(app, client, db):
    factories.user(email="twice@example.com")
    path = _request_link(client, "twice@example.com")
    assert open_link(client, path) == open_link(client, path)  # people click their email twice
    fresh = app.test_client()  # another browser, without the link
    r = fresh.get("/account/reset-password")
    assert r.status_code == 400 and "Open that link again" in r.get_data(as_text=True)


def test_link_dies_after_any_other_password_change(client, db):
    user = factories.user(email="change@example.com")
    page = open_link(client, _request_link(client, "change@example.com"))
    accounts.set_password(user, "changed-elsewhere-1")
    r = client.post(page, data={"password": NEW, "confirm": NEW})
    assert r.status_code == 400 and passwords.verify_password(user, "changed-elsewhere-1")


def test_expired_link_is_refused_and_changes_nothing(app, client, db):
    user = factories.user(email="slow@example.com")
    old = now_utc() - timedelta(seconds=app.config["PASSWORD_RESET_MAX_AGE"] + 5)
    token = account_tokens.make_reset_token(user, now=old)
    r = client.get(f"/account/reset-password/{token}")
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    assert passwords.verify_password(user, factories.PASSWORD)
    assert queued("password_changed") == []


def test_tampered_link_is_refused(client, db):
    user = factories.user(email="tamper@example.com")
    path = _request_link(client, "tamper@example.com")
    r = client.get(path + "x")
    assert r.status_code == 400 and "not valid" in r.get_data(as_text=True)
    assert client.post("/account/reset-password", data={"password": NEW, "confirm": NEW}).status_code == 400
    # A verify-email token is not a reset token (own salt).
    verify = account_tokens.make_verify_token(user)
    assert client.get(f"/account/reset-password/{verify}").status_code == 400
    assert passwords.verify_password(user, factories.PASSWORD)


def test_short_or_mismatched_new_password_is_refused(client, db):
    user = factories.user(email="weak@example.com")
    path = open_link(client, _request_link(client, "weak@example.com"))
    r = client.post(path, data={"password": "short", "confirm": "short"})
    assert r.status_code == 422 and "at least 10 characters" in r.get_data(as_text=True)
    r = client.post(path, data={"password": NEW, "confirm": NEW + "!"})
    assert r.status_code == 422 and "do not match" in r.get_data(as_text=True)
    assert passwords.verify_password(user, factories.PASSWORD)
    assert client.post(path, data={"password": NEW, "confirm": NEW}).status_code == 302  # link still good


def test_forgot_password_with_malformed_email_shows_field_error(client, db):
    r = client.post("/account/forgot-password", data={"email": "nope"})
    assert r.status_code == 422 and "valid email address" in r.get_data(as_text=True)
