"""Sessions end for real (issue #16, invariant 8): sign-out, sign-out-everywhere, a password
change, an admin's sign-out and the idle timeout kill a copied cookie, remember-me or not.
The clinical page behind them: a provider's view of an intake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.accounts import passwords
from retreat.accounts.sessions import EndReason, UserSession
from retreat.core.crypto import hash_token
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER

JSON = {"Accept": "application/json"}
REMEMBER = "remember_token"


@pytest.fixture()
def s(db):
    s = fcl.setup()
    s.provider.password_hash = passwords.hash_password(factories.PASSWORD)
    s.request = fcl.submit(s, medications=MARKER)
    db.session.commit()
    return s


def intake(s) -> str:
    return f"/provider/requests/{s.request.id}"


def sign_in(app, user, *, remember: bool = False):
    """A browser signed in through the real login form."""
    c = app.test_client()
    data = {"email": user.email, "password": factories.PASSWORD}
    if remember:
        data["remember"] = "y"
    r = c.post("/account/login", data=data)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return c


def copy_of(app, c, names=("session", REMEMBER)):
    """Another browser holding copies of ``c``'s cookies (an attacker's, or a restarted browser)."""
    other = app.test_client()
    for name in names:
        cookie = c.get_cookie(name)
        if cookie is not None:
            other.set_cookie(name, cookie.value)
    return other


def server_session(db, c) -> UserSession:
    with c.session_transaction() as sess:
        raw = sess["_user_id"]
    return db.session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(raw)))


def assert_anonymous(c, url, *, json=False):
    r = c.get(url, headers=JSON if json else {})
    if json:
        assert r.status_code == 401 and "error" in r.get_json()
    else:
        assert r.status_code == 302 and "/account/login" in r.headers["Location"]
    assert MARKER.encode() not in r.data


# Item 1: server sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("json", [False, True])
def test_provider_cookie_replayed_after_sign_out_is_anonymous(app, db, s, json):
    c = sign_in(app, s.provider)
    assert MARKER.encode() in c.get(intake(s)).data
    stolen = copy_of(app, c)
    assert c.post("/account/logout").status_code == 302
    assert_anonymous(stolen, intake(s), json=json)
    assert_anonymous(c, intake(s), json=json)


@pytest.mark.parametrize("json", [False, True])
def test_sign_in_responses_own_cookie_times_out(app, db, s, json):
    """The sign-in response's session has a last-seen time: the staff idle timeout counts from it."""
    c = sign_in(app, s.provider)
    row = server_session(db, c)
    assert row.last_seen_at is not None and row.revoked_at is None
    row.last_seen_at = now_utc() - timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES_STAFF"] + 1)
    db.session.commit()
    assert_anonymous(copy_of(app, c), intake(s), json=json)
    db.session.refresh(row)
    assert row.revoked_at is not None and row.revoked_reason == EndReason.IDLE
    assert_anonymous(c, intake(s), json=json)  # back within the timeout: still dead


def test_facilitators_get_the_staff_idle_timeout(app, db):
    fac = factories.user("facilitator")
    db.session.commit()
    c = sign_in(app, fac)
    row = server_session(db, c)
    row.last_seen_at = now_utc() - timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES_STAFF"] + 1)
    db.session.commit()
    assert_anonymous(c, "/facilitator/")


def test_last_seen_moves_with_activity(app, db, s):
    c = sign_in(app, s.provider)
    row = server_session(db, c)
    row.last_seen_at = now_utc() - timedelta(minutes=10)
    db.session.commit()
    assert c.get(intake(s)).status_code == 200
    db.session.refresh(row)
    assert now_utc() - row.last_seen_at < timedelta(minutes=1)


def test_a_cookie_naming_no_session_is_anonymous(app, db, s):
    c = app.test_client()
    with c.session_transaction() as sess:
        sess["_user_id"] = f"{s.provider.id}:1"  # the old identity format
        sess["_fresh"] = True
    assert_anonymous(c, intake(s))


def test_sign_out_everywhere_kills_another_browsers_cookie(app, db, s):
    laptop, phone = sign_in(app, s.provider), sign_in(app, s.provider)
    assert phone.get(intake(s)).status_code == 200
    assert laptop.post("/account/settings/sign-out-everywhere").status_code == 302
    assert_anonymous(phone, intake(s))
    assert_anonymous(laptop, intake(s))


def test_account_page_lists_sessions_and_signs_out_one(app, db):
    user = factories.user("participant")
    db.session.commit()
    laptop = sign_in(app, user)
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17.0 Safari/604.1"
    phone.post("/account/login", data={"email": user.email, "password": factories.PASSWORD})
    page = laptop.get("/account/settings").get_data(as_text=True)
    assert "Safari on iPhone" in page and "this device" in page and "Sign out everywhere" in page
    target = server_session(db, phone)
    r = laptop.post(f"/account/settings/sessions/{target.id}/sign-out")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/settings")
    assert phone.get("/account/settings").status_code == 302
    assert laptop.get("/account/settings").status_code == 200
    assert "Safari on iPhone" not in laptop.get("/account/settings").get_data(as_text=True)


def test_someone_elses_session_cannot_be_signed_out(app, db):
    a, b = factories.user("participant"), factories.user("participant")
    db.session.commit()
    ca, cb = sign_in(app, a), sign_in(app, b)
    theirs = server_session(db, cb)
    assert ca.post(f"/account/settings/sessions/{theirs.id}/sign-out").status_code == 404
    assert ca.post("/account/settings/sessions/99999999999/sign-out").status_code == 404
    db.session.refresh(theirs)
    assert theirs.revoked_at is None and cb.get("/account/settings").status_code == 200


def test_password_change_kills_other_sessions_but_not_this_one(app, db, s):
    here, there = sign_in(app, s.provider), sign_in(app, s.provider)
    new = "a-new-calm-long-password"
    r = here.post("/account/settings/password", data={"pw-current_password": factories.PASSWORD,
                                                       "pw-password": new, "pw-confirm": new})
    assert r.status_code == 302
    assert MARKER.encode() in here.get(intake(s)).data
    assert_anonymous(there, intake(s))
    row = server_session(db, there)
    assert row.revoked_reason == EndReason.PASSWORD_CHANGED


def test_admins_sign_out_kills_the_users_sessions(app, db, s, make_client):
    admin = make_client("admin", password=None)
    c = sign_in(app, s.provider)
    assert admin.post(f"/admin/users/{s.provider.id}/sign-out").status_code == 302
    assert_anonymous(c, intake(s))
    assert server_session(db, c).revoked_reason == EndReason.ADMIN_SIGN_OUT


def test_deactivation_kills_the_users_sessions(app, db, s, make_client):
    admin = make_client("admin", password=None)
    c = sign_in(app, s.provider)
    assert admin.post(f"/admin/users/{s.provider.id}/active", data={"value": "0"}).status_code == 302
    assert_anonymous(c, intake(s))


# Item 2: remember-me ---------------------------------------------------------------------------


def participant_intake(s) -> str:
    """The participant's view of their submitted intake's review."""
    return f"/me/enrollments/{s.enrollment.id}/clearance"


@pytest.fixture()
def remembered(app, db, s):
    s.participant.password_hash = passwords.hash_password(factories.PASSWORD)
    db.session.commit()
    c = sign_in(app, s.participant, remember=True)
    assert c.get_cookie(REMEMBER) is not None
    return c


def test_remember_me_survives_a_browser_restart(app, db, s, remembered):
    restarted = copy_of(app, remembered, names=(REMEMBER,))
    for _ in range(3):  # not only the first page
        r = restarted.get(participant_intake(s))
        assert r.status_code == 200 and b"In medical review" in r.data


def test_remember_me_cookie_is_dead_after_sign_out(app, db, s, remembered):
    stolen = copy_of(app, remembered, names=(REMEMBER,))
    r = remembered.post("/account/logout")
    assert r.status_code == 302
    cleared = [h for h in r.headers.getlist("Set-Cookie") if h.startswith(f"{REMEMBER}=")]
    assert cleared and ("Max-Age=0" in cleared[0] or "1970" in cleared[0])  # the browser deletes it
    assert remembered.get_cookie(REMEMBER) is None
    assert_anonymous(stolen, participant_intake(s))
    assert_anonymous(stolen, participant_intake(s), json=True)


def test_remember_me_cookie_dies_with_the_server_session(app, db, s, remembered):
    stolen = copy_of(app, remembered, names=(REMEMBER,))
    other = sign_in(app, s.participant)
    assert other.post("/account/settings/sign-out-everywhere").status_code == 302
    assert_anonymous(stolen, participant_intake(s))


def test_remember_me_is_deleted_at_the_idle_timeout(app, db, s, remembered):
    row = server_session(db, remembered)
    assert row.remember
    row.last_seen_at = now_utc() - app.config["REMEMBER_COOKIE_DURATION"] - timedelta(minutes=1)
    db.session.commit()
    stolen = copy_of(app, remembered, names=(REMEMBER,))
    r = remembered.get(participant_intake(s))
    assert r.status_code == 302 and "/account/login" in r.headers["Location"]
    assert remembered.get_cookie(REMEMBER) is None
    assert_anonymous(stolen, participant_intake(s))


def test_no_remember_me_for_staff(app, db, s):
    c = sign_in(app, s.provider, remember=True)
    assert c.get_cookie(REMEMBER) is None
    assert server_session(db, c).remember is False
    assert_anonymous(copy_of(app, c, names=(REMEMBER,)), intake(s))


def test_a_session_not_kept_signed_in_is_not_restored_without_its_cookie(app, db, s):
    s.participant.password_hash = passwords.hash_password(factories.PASSWORD)
    db.session.commit()
    c = sign_in(app, s.participant)
    assert c.get_cookie(REMEMBER) is None
    assert_anonymous(copy_of(app, c, names=(REMEMBER,)), participant_intake(s))
