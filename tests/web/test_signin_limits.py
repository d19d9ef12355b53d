"""Sign-in limits in one process (issue #16, item 6): the address + email pair, a right password
forgetting the pair's count, the owner's usual address, and no plain email in the counters."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from retreat import create_app
from retreat.accounts import signin_limits
from retreat.extensions import limiter
from retreat.models import SignInCounter
from tests import factories
from tests.conftest import base_config


@pytest.fixture(scope="module")
def limited_app():
    app = create_app(base_config(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="50 per hour",
                                 LOGIN_PAIR_RATE_LIMIT="3 per hour", LOGIN_EMAIL_RATE_LIMIT="8 per hour"))
    yield app
    limiter.reset()
    limiter.enabled = False  # the other tests' app runs without limits


def _try(app, ip, email, password="wrong-password-x"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c.post("/account/login", data={"email": email, "password": password})


def test_pair_limit_then_a_right_password_forgets_it_and_others_are_unaffected(limited_app, db):
    user = factories.user(email="pat@example.com")
    db.session.flush()
    assert [_try(limited_app, "10.9.0.1", "pat@example.com").status_code for _ in range(4)] == [422, 422, 422, 429]
    r = _try(limited_app, "10.9.0.1", "pat@example.com", factories.PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "Too many attempts" in r.get_data(as_text=True)
    assert _try(limited_app, "10.9.0.2", "pat@example.com", factories.PASSWORD).status_code == 302  # another address
    assert _try(limited_app, "10.9.0.1", "someone@example.com").status_code == 422  # another account
    # Two failures, a right password: the pair starts again from zero.
    for _ in range(2):
        assert _try(limited_app, "10.9.0.3", "pat@example.com").status_code == 422
    assert _try(limited_app, "10.9.0.3", "pat@example.com", factories.PASSWORD).status_code == 302
    assert [_try(limited_app, "10.9.0.3", "pat@example.com").status_code for _ in range(3)] == [422] * 3
    # The counters are keyed by HMACs: no email address and no client address in the table.
    keys = db.session.scalars(select(SignInCounter.key)).all()
    assert keys and all(len(k) == 64 and "@" not in k and "10.9" not in k for k in keys)
    assert user.id


def test_email_limit_spares_addresses_that_signed_in_as_the_account(limited_app, db):
    factories.user(email="kim@example.com")
    db.session.flush()
    assert _try(limited_app, "10.8.0.99", "kim@example.com", factories.PASSWORD).status_code == 302
    assert [_try(limited_app, f"10.8.0.{i}", "kim@example.com").status_code for i in range(9)] == [422] * 8 + [429]
    assert _try(limited_app, "10.8.0.50", "kim@example.com", factories.PASSWORD).status_code == 429
    assert _try(limited_app, "10.8.0.99", "kim@example.com", factories.PASSWORD).status_code == 302
    assert signin_limits.hashed_key("email", 3600, "kim@example.com") != "kim@example.com"
