"""Two-factor: set-up with QR code, second login step, replay protection, recovery codes, disabling."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp

from retreat.accounts import auth
from retreat.accounts import users as accounts
from retreat.timeutil import now_utc
from tests import factories
from tests.web.account_helpers import audit_actions, signed_in


def _totp_user(role="facilitator", **kw):
    user = factories.user(role, **kw)
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = now_utc()
    return user


def _password_step(client, user, next_=None):
    url = "/account/login" + (f"?next={next_}" if next_ else "")
    r = client.post(url, data={"email": user.email, "password": factories.PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login/two-factor")
    return r


def _code(user, offset_steps=0) -> str:
    totp = pyotp.TOTP(user.totp_secret)
    return totp.at(now_utc() + timedelta(seconds=30 * offset_steps))


def test_password_then_code_signs_in_and_keeps_next(client, db):
    user = _totp_user()
    _password_step(client, user, next_="/account/settings")
    with client.session_transaction() as sess:
        assert "_user_id" not in sess  # not signed in after the password alone
    assert client.get("/account/settings").status_code == 302
    r = client.post("/account/login/two-factor", data={"code": _code(user)})
    assert r.status_code == 302 and r.headers["Location"] == "/account/settings"
    assert client.get("/account/settings").status_code == 200
    assert "auth.login" in audit_actions(user.id)


def test_replayed_code_is_refused(app, client, db):
    user = _totp_user()
    code = _code(user)
    _password_step(client, user)
    assert client.post("/account/login/two-factor", data={"code": code}).status_code == 302
    other = app.test_client()
    _password_step(other, user)
    r = other.post("/account/login/two-factor", data={"code": code})
    assert r.status_code == 422 and "already used" in r.get_data(as_text=True)
    assert other.get("/account/settings").status_code == 302


def test_wrong_codes_are_audited_and_send_back_to_password_step(client, db):
    user = _totp_user()
    _password_step(client, user)
    for _ in range(auth.MAX_TOTP_FAILURES - 1):
        r = client.post("/account/login/two-factor", data={"code": "000000" if _code(user) != "000000" else "111111"})
        assert r.status_code == 422 and "not right" in r.get_data(as_text=True)
    r = client.post("/account/login/two-factor", data={"code": "12"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login")
    assert client.get("/account/login/two-factor").status_code == 302  # pending state is gone
    assert audit_actions(user.id).count("auth.totp_failed") == auth.MAX_TOTP_FAILURES
    assert client.get("/account/settings").status_code == 302


def test_second_step_without_password_step_goes_to_login(client, db):
    r = client.get("/account/login/two-factor")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login")


def test_second_step_expires(client, db):
    user = _totp_user()
    _password_step(client, user)
    with client.session_transaction() as sess:
        sess["totp_started"] -= 10 * 60
    r = client.post("/account/login/two-factor", data={"code": _code(user)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login")


def _enable_via_pages(client, user) -> list[str]:
    page = client.get("/account/two-factor/setup").get_data(as_text=True)
    assert "<svg" in page and "QR code" in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert secret == user.totp_secret
    r = client.post("/account/two-factor/setup", data={"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", r.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return codes


def test_setup_shows_secret_and_qr_and_enables_after_a_correct_code(app, db):
    user = factories.user("participant")
    c = signed_in(app, user)
    c.get("/account/two-factor/setup")
    r = c.post("/account/two-factor/setup", data={"code": "123456" if _code(user) != "123456" else "654321"})
    assert r.status_code == 422 and "not right" in r.get_data(as_text=True)
    assert not user.totp_enabled and "auth.totp_failed" in audit_actions(user.id)
    codes = _enable_via_pages(c, user)
    assert user.totp_enabled and "auth.totp_enabled" in audit_actions(user.id)
    assert "is on for your account" in c.get("/account/two-factor/setup").get_data(as_text=True)
    # A recovery code signs in once.
    fresh = app.test_client()
    _password_step(fresh, user)
    assert fresh.post("/account/login/two-factor", data={"code": codes[0].upper()}).status_code == 302
    again = app.test_client()
    _password_step(again, user)
    assert again.post("/account/login/two-factor", data={"code": codes[0]}).status_code == 422
    assert auth.recovery_codes_left(user) == 9


def test_disable_needs_password_and_current_code(app, db):
    user = _totp_user("participant")
    c = app.test_client()
    _password_step(c, user)
    c.post("/account/login/two-factor", data={"code": _code(user, -1)})
    r = c.post("/account/two-factor/disable", data={"totp-password": "wrong-password-1", "totp-code": _code(user)})
    assert r.status_code == 422 and "password is not correct" in r.get_data(as_text=True)
    assert user.totp_enabled
    r = c.post("/account/two-factor/disable", data={"totp-password": factories.PASSWORD, "totp-code": "000000"
                                                    if _code(user) != "000000" else "111111"})
    assert r.status_code == 422 and "code is not right" in r.get_data(as_text=True)
    assert user.totp_enabled
    r = c.post("/account/two-factor/disable", data={"totp-password": factories.PASSWORD, "totp-code": _code(user)})
    assert r.status_code == 302 and not user.totp_enabled and user.totp_secret is None
    assert "auth.totp_disabled" in audit_actions(user.id)


def test_staff_cannot_disable_when_practice_requires_it(app, db):
    user = _totp_user("finance")
    accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1")
    c = app.test_client()
    _password_step(c, user)
    c.post("/account/login/two-factor", data={"code": _code(user)})
    page = c.get("/account/settings").get_data(as_text=True)
    assert "cannot be turned off" in page
    r = c.post("/account/two-factor/disable", data={"totp-password": factories.PASSWORD, "totp-code": _code(user, 1)})
    assert r.status_code == 302 and user.totp_enabled


def test_staff_without_totp_is_sent_to_setup_when_required(app, db):
    accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1")
    user = factories.user("admin")
    c = signed_in(app, user)
    r = c.get("/account/settings")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/two-factor/setup")
    _enable_via_pages(c, user)
    assert c.get("/account/settings").status_code == 200
