"""Participant sign-up and email verification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.accounts import passwords
from retreat.accounts import tokens as account_tokens
from retreat.accounts import users as accounts
from retreat.messaging import sealed
from retreat.models import Role, User
from retreat.timeutil import now_utc
from tests import factories
from tests.links import follow_link
from tests.web.account_helpers import STRONG, audit_actions, link_path, queued, signed_in, signup_form


def _count_users(db) -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_signup_page_offers_zones_and_loads_timezone_script(client):
    r = client.get("/account/signup")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<option value="America/Denver">' in html and 'data-autodetect-tz="1"' in html
    assert "/static/js/timezone.js" in html and "<script>" not in html
    assert "privacy notice" in html


def test_signup_creates_unverified_participant_and_queues_verification_without_signing_in(client, db):
    r = client.post("/account/signup", data=signup_form(email="  Robin@Example.COM "))
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/check-email")
    user = accounts.get_by_email("robin@example.com")
    assert user.email == "robin@example.com" and user.role == Role.PARTICIPANT
    assert user.tz == "America/Denver" and not user.email_verified
    assert passwords.verify_password(user, STRONG)
    page = client.get("/account/check-email").get_data(as_text=True)
    assert "Check your email" in page
    assert "Please confirm your email address" not in page  # no banner: nobody is signed in (issue #16 item 5)
    assert client.get("/account/settings").status_code == 302
    [msg] = queued("verify_email")
    assert msg.recipient_email == "robin@example.com" and msg.essential
    assert msg.context["name"] == "Robin Rivers"
    assert sealed.context_of(msg)["verify_url"].startswith("http://localhost/account/verify-email/")
    assert msg.dedupe_key.startswith(f"verify-email:{user.id}:")
    assert "user.created" in audit_actions(user.id)


def test_verification_link_verifies_then_repeat_click_says_already(client, db):
    client.post("/account/signup", data=signup_form())
    path = link_path(sealed.context_of(queued("verify_email")[0])["verify_url"])
    page, r = follow_link(client, path)
    assert page == "/account/verify-email"
    assert r.status_code == 200 and "Your email address is confirmed" in r.get_data(as_text=True)
    user = accounts.get_by_email("robin@example.com")
    assert user.email_verified
    assert audit_actions(user.id).count("user.email_verified") == 1
    _page, r = follow_link(client, path)
    assert r.status_code == 200 and "Already confirmed" in r.get_data(as_text=True)
    assert audit_actions(user.id).count("user.email_verified") == 1
    # Confirmed, then signed in with the password (the link itself signs nobody in).
    assert client.get("/account/settings").status_code == 302
    c = signed_in(client.application, user, STRONG)
    assert "Please confirm your email address" not in c.get("/account/settings").get_data(as_text=True)


def test_existing_email_gets_same_outcome_and_owner_is_told(client, db):
    owner = factories.user("participant", email="owner@example.com", name="Olive Owner")
    before = _count_users(db)
    r = client.post("/account/signup", data=signup_form(email="OWNER@example.com", password="another-password-1",
                                                         confirm="another-password-1"))
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/check-email")
    assert _count_users(db) == before
    assert passwords.verify_password(owner, factories.PASSWORD)  # untouched
    assert queued("verify_email") == []
    [msg] = queued("signup_existing_account")
    assert msg.recipient_email == "owner@example.com" and msg.context["name"] == "Olive Owner"
    assert msg.context["reset_url"].endswith("/account/forgot-password")
    assert msg.context["login_url"].endswith("/account/login")
    # Not signed in as the owner, obviously.
    assert client.get("/account/settings").status_code == 302


@pytest.mark.parametrize("overrides, field_message", [
    ({"password": "short1", "confirm": "short1"}, "at least 10 characters"),
    ({"confirm": "a-different-long-password"}, "do not match"),
    ({"email": "not-an-email"}, "valid email address"),
    ({"name": ""}, "Enter your name"),
    ({"tz": "Mars/Olympus_Mons"}, "is not one we know"),
    ({"agree": None}, "agree to the privacy notice"),
])
def test_bad_signup_input_is_refused_and_nothing_is_created(client, db, overrides, field_message):
    before = _count_users(db)
    r = client.post("/account/signup", data=signup_form(**overrides))
    assert r.status_code == 422
    assert field_message in r.get_data(as_text=True)
    assert _count_users(db) == before and queued("verify_email") == []
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_tampered_verify_token_gives_clear_message_and_changes_nothing(client, db):
    client.post("/account/signup", data=signup_form())
    path = link_path(sealed.context_of(queued("verify_email")[0])["verify_url"])
    r = client.get(path[:-3] + ("abc" if not path.endswith("abc") else "xyz"))
    assert r.status_code == 400
    assert "not valid" in r.get_data(as_text=True)
    assert not accounts.get_by_email("robin@example.com").email_verified


def test_token_for_an_old_address_does_not_verify_a_new_one(app, db):
    user = factories.user(verified=False, email="first@example.com")
    token = account_tokens.make_verify_token(user)
    user.email = "second@example.com"
    with pytest.raises(account_tokens.TokenInvalid):
        account_tokens.load_verify_token(token)


def test_expired_verify_link_offers_resend_which_queues_a_fresh_link(app, client, db):
    user = factories.user(verified=False, email="late@example.com")
    old = now_utc() - timedelta(seconds=app.config["EMAIL_VERIFY_MAX_AGE"] + 60)
    token = account_tokens.make_verify_token(user, now=old)
    _page, r = follow_link(client, f"/account/verify-email/{token}")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "expired" in html and "Send me a new link" in html
    assert not user.email_verified
    r = client.post("/account/verify-email/resend", data={"token": token})
    assert r.status_code == 302
    [msg] = queued("verify_email", "late@example.com")
    fresh = link_path(sealed.context_of(msg)["verify_url"])
    assert "Your email address is confirmed" in follow_link(client, fresh)[1].get_data(as_text=True)
    assert user.email_verified


def test_resend_with_a_tampered_token_sends_nothing_but_answers_the_same(client, db):
    r = client.post("/account/verify-email/resend", data={"token": "garbage.token.here"})
    assert r.status_code == 302 and queued("verify_email") == []


def test_banner_resend_for_signed_in_unverified_user(app, db):
    c = signed_in(app, factories.user("participant", verified=False))
    page = c.get("/account/settings").get_data(as_text=True)
    assert "Please confirm your email address" in page and "Send a new link" in page
    r = c.post("/account/verify-email/resend")
    assert r.status_code == 302
    assert len(queued("verify_email", c.user.email)) == 1


def test_resend_for_verified_user_sends_nothing(app, db):
    c = signed_in(app, factories.user("participant"))
    c.post("/account/verify-email/resend")
    assert queued("verify_email") == []


def test_signup_while_signed_in_goes_home(app, db):
    c = signed_in(app, factories.user("participant"))
    assert c.get("/account/signup").status_code == 302
