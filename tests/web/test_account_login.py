"""Login hardening: session fixation, safe `next`, idle logout, rate limits with a friendly 429."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat import create_app
from retreat.accounts.sessions import UserSession
from retreat.core.crypto import hash_token
from retreat.extensions import db as _db
from retreat.extensions import limiter
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import base_config
from tests.web.account_helpers import signed_in, signup_form


def _login(client, user, next_=None, password=None):
    url = "/account/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"email": user.email, "password": password or factories.PASSWORD})


def test_session_is_renewed_on_login(client, db):
    user = factories.user("participant")
    with client.session_transaction() as sess:
        sess["planted"] = "attacker-chosen"
    before = client.get_cookie("session").value
    assert _login(client, user).status_code == 302
    after = client.get_cookie("session").value
    assert after != before
    with client.session_transaction() as sess:
        assert "planted" not in sess
        raw = sess["_user_id"]  # the server session's id, never the user's
    assert raw != user.get_id() and str(user.id) not in raw.split(":")
    row = db.session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(raw)))
    assert row.user_id == user.id and row.revoked_at is None and row.last_seen_at is not None


@pytest.mark.parametrize("target, expected", [
    ("/account/settings", "/account/settings"),
    ("https://evil.example/phish", "/home"),
    ("//evil.example/phish", "/home"),
    ("/\\evil.example", "/home"),
    ("javascript:alert(1)", "/home"),
])
def test_next_is_followed_only_when_same_site(client, db, target, expected):
    from urllib.parse import quote

    user = factories.user("participant")
    r = _login(client, user, next_=quote(target, safe=""))
    assert r.status_code == 302
    assert r.headers["Location"] == expected


def _idle_for(c, seconds: int) -> None:
    """Move the server session of client ``c`` back in time (as if unused for ``seconds``)."""
    with c.session_transaction() as sess:
        raw = sess["_user_id"]
    row = _db.session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(raw)))
    row.last_seen_at = now_utc() - timedelta(seconds=seconds)
    _db.session.commit()


@pytest.mark.parametrize("role, signed_out", [
    ("finance", True), ("provider", True), ("admin", True), ("facilitator", True), ("participant", False),
])
def test_idle_timeout_signs_out_staff_but_not_participants(app, db, role, signed_out):
    user = factories.user(role)
    c = signed_in(app, user)
    assert app.config["IDLE_TIMEOUT_MINUTES_STAFF"] == 15
    _idle_for(c, 16 * 60)
    r = c.get("/account/settings")
    if signed_out:
        assert r.status_code == 302 and "/account/login" in r.headers["Location"]
        assert "inactivity" in c.get(r.headers["Location"]).get_data(as_text=True)
        assert c.get("/account/settings").status_code == 302
    else:
        assert r.status_code == 200


def test_staff_active_within_timeout_stays_signed_in(app, db):
    c = signed_in(app, factories.user("finance"))
    _idle_for(c, 14 * 60)
    assert c.get("/account/settings").status_code == 200


def test_logout_ends_the_session(app, db):
    c = signed_in(app, factories.user("participant"))
    assert c.post("/account/logout").status_code == 302
    assert c.get("/account/settings").status_code == 302


# Rate limits -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_app():
    # Day-long windows: the counts are in fixed windows, and a minute's boundary falling between a
    # test's attempts (a busy CI machine) would start a fresh count and let one more through.
    app = create_app(base_config(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="4 per day",
                                 LOGIN_EMAIL_RATE_LIMIT="3 per day", SIGNUP_RATE_LIMIT="2 per day",
                                 PASSWORD_RESET_RATE_LIMIT="2 per day", RESEND_RATE_LIMIT="2 per day",
                                 TOTP_RATE_LIMIT="3 per day"))
    yield app
    limiter.reset()
    limiter.enabled = False  # the other tests' app runs without limits


@pytest.fixture()
def limited(limited_app, db):
    limiter.reset()
    yield limited_app
    limiter.reset()


def _client(app, ip):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c


def test_login_is_limited_per_ip_with_a_friendly_page(limited, db):
    c = _client(limited, "10.0.0.1")
    for i in range(4):
        r = c.post("/account/login", data={"email": f"x{i}@example.com", "password": "wrong-password-x"})
        assert r.status_code == 422
    r = c.post("/account/login", data={"email": "x9@example.com", "password": "wrong-password-x"})
    assert r.status_code == 429
    assert "Too many attempts" in r.get_data(as_text=True) and "Retry-After" in r.headers
    assert _client(limited, "10.0.0.2").get("/account/login").status_code == 200


def test_failed_logins_are_limited_per_target_email_across_ips(limited, db):
    user = factories.user(email="target@example.com")
    for i in range(3):
        r = _client(limited, f"10.1.0.{i}").post(
            "/account/login", data={"email": "Target@example.com", "password": "wrong-password-x"})
        assert r.status_code == 422
    r = _client(limited, "10.1.0.99").post("/account/login",
                                           data={"email": user.email, "password": factories.PASSWORD})
    assert r.status_code == 429
    other = factories.user(email="other@example.com")
    assert _login(_client(limited, "10.1.0.99"), other).status_code == 302


def test_signup_is_limited_per_ip(limited, db):
    c = _client(limited, "10.2.0.1")
    for _ in range(2):
        assert c.post("/account/signup", data=signup_form(email="bad")).status_code == 422
    assert c.post("/account/signup", data=signup_form(email="new@example.com")).status_code == 429


def test_forgot_password_and_resend_are_limited_per_ip(limited, db):
    c = _client(limited, "10.3.0.1")
    for _ in range(2):
        assert c.post("/account/forgot-password", data={"email": "a@example.com"}).status_code == 200
    assert c.post("/account/forgot-password", data={"email": "a@example.com"}).status_code == 429
    for _ in range(2):
        assert c.post("/account/verify-email/resend", data={"token": "x"}).status_code == 302
    assert c.post("/account/verify-email/resend", data={"token": "x"}).status_code == 429


def test_two_factor_codes_are_limited_per_pending_sign_in(limited, db):
    import pyotp

    user = factories.user("finance")
    user.totp_secret, user.totp_enabled_at = pyotp.random_base32(), now_utc()
    db.session.flush()  # the limited app's requests use their own session on the test connection
    c = _client(limited, "10.4.0.1")
    assert _login(c, user).headers["Location"].endswith("/account/login/two-factor")
    wrong = "000000" if pyotp.TOTP(user.totp_secret).now() != "000000" else "111111"
    for _ in range(3):
        assert c.post("/account/login/two-factor", data={"code": wrong}).status_code == 422
    r = c.post("/account/login/two-factor", data={"code": pyotp.TOTP(user.totp_secret).now()})
    assert r.status_code == 429 and "Too many attempts" in r.get_data(as_text=True)
