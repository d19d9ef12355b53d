"""Signed links: expiry with an injected clock, salts, binding to email / password state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retreat.accounts import passwords
from retreat.accounts import tokens as account_tokens
from retreat.accounts import users as accounts
from retreat.accounts.tokens import TokenExpired, TokenInvalid
from tests import factories

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_verify_token_expires_after_configured_age(app, db):
    user = factories.user(verified=False)
    token = account_tokens.make_verify_token(user, now=T0)
    max_age = app.config["EMAIL_VERIFY_MAX_AGE"]
    assert account_tokens.load_verify_token(token, now=T0 + timedelta(seconds=max_age - 1)) == user
    with pytest.raises(TokenExpired) as err:
        account_tokens.load_verify_token(token, now=T0 + timedelta(seconds=max_age + 1))
    assert err.value.user_id == user.id


def test_verify_service_is_idempotent_and_expired_link_after_verifying_is_fine(app, db):
    user = factories.user(verified=False)
    token = account_tokens.make_verify_token(user, now=T0)
    assert accounts.verify_email(token, now=T0) == (user, False)
    assert user.email_verified_at == T0
    assert accounts.verify_email(token, now=T0) == (user, True)
    late = T0 + timedelta(seconds=app.config["EMAIL_VERIFY_MAX_AGE"] + 5)
    assert accounts.verify_email(token, now=late) == (user, True)


def test_reset_token_expiry_and_single_use(app, db):
    user = factories.user()
    token = account_tokens.make_reset_token(user, now=T0)
    max_age = app.config["PASSWORD_RESET_MAX_AGE"]
    with pytest.raises(TokenExpired):
        accounts.reset_password(token, "a-new-long-password", now=T0 + timedelta(seconds=max_age + 1))
    assert passwords.verify_password(user, factories.PASSWORD)
    accounts.reset_password(token, "a-new-long-password", now=T0 + timedelta(seconds=10))
    with pytest.raises(TokenInvalid):
        accounts.reset_password(token, "another-long-password", now=T0 + timedelta(seconds=20))
    assert passwords.verify_password(user, "a-new-long-password")


def test_reset_token_dies_after_sign_out_everywhere(db):
    user = factories.user()
    token = account_tokens.make_reset_token(user, now=T0)
    accounts.logout_everywhere(user)
    with pytest.raises(TokenInvalid):
        account_tokens.load_reset_token(token, now=T0)


def test_kinds_do_not_mix_and_garbage_is_invalid(db):
    user = factories.user()
    with pytest.raises(TokenInvalid):
        account_tokens.load_reset_token(account_tokens.make_verify_token(user, now=T0), now=T0)
    with pytest.raises(TokenInvalid):
        account_tokens.load_verify_token(account_tokens.make_reset_token(user, now=T0), now=T0)
    for junk in ("", "x", "a.b.c", "eyJ1IjoxfQ.AAAA.BBBB"):
        with pytest.raises(TokenInvalid):
            account_tokens.load_verify_token(junk, now=T0)


def test_deactivated_account_link_is_invalid(db):
    user = factories.user(verified=False)
    token = account_tokens.make_verify_token(user, now=T0)
    user.is_active_account = False
    with pytest.raises(TokenInvalid):
        account_tokens.load_verify_token(token, now=T0)


def test_signup_service_validates_before_touching_anything(db):
    with pytest.raises(accounts.ValidationFailed):
        accounts.sign_up(name="A", email="a@example.com", password="long-enough-pw", tz="Not/AZone", now=T0)
    assert accounts.get_by_email("a@example.com") is None
