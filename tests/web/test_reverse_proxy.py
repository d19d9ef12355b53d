"""Behind nginx (TRUSTED_PROXY_HOPS=1) the client's address and scheme come from X-Forwarded-*:
rate limits apply per real client, HTTPS is recognised. Without it those headers are ignored, so a
client cannot forge its way around a limit."""

from __future__ import annotations

import pytest

from retreat import create_app
from retreat.extensions import limiter
from tests.conftest import base_config

PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # every request reaches gunicorn from the local nginx


def _app(hops: int):
    app = create_app(base_config(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute",
                                 LOGIN_EMAIL_RATE_LIMIT="100 per minute", TRUSTED_PROXY_HOPS=hops,
                                 BASE_URL="http://localhost"))
    limiter.reset()  # the limiter is shared by every app: start from empty counters
    return app


@pytest.fixture()
def restore_limiter():
    """The other tests' app runs without limits: put the shared limiter back after."""
    before = limiter.enabled
    yield
    limiter.reset()
    limiter.enabled = before


def _login(client, forwarded_for: str):
    return client.post("/account/login", data={"email": "nobody@example.com", "password": "wrong-password-x"},
                       headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
                       environ_base=PROXY)


def test_behind_one_trusted_proxy_limits_are_per_real_client(db, restore_limiter):
    client = _app(1).test_client()
    assert [_login(client, "203.0.113.7").status_code for _ in range(4)] == [422, 422, 422, 429]
    assert _login(client, "198.51.100.4").status_code == 422  # another person behind the same proxy
    # a client prepending its own X-Forwarded-For: only the address nginx appended counts
    assert _login(client, "198.51.100.99, 203.0.113.7").status_code == 429


def test_https_at_the_proxy_is_recognised(db, restore_limiter):
    r = _app(1).test_client().get("/", headers={"X-Forwarded-Proto": "https"}, environ_base=PROXY)
    assert r.status_code == 200 and "max-age" in r.headers.get("Strict-Transport-Security", "")


def test_without_trusted_proxies_forwarded_headers_are_ignored(db, restore_limiter):
    client = _app(0).test_client()
    codes = [_login(client, f"203.0.113.{i}").status_code for i in range(4)]
    assert codes == [422, 422, 422, 429]  # one address (127.0.0.1), whatever the header claims
    r = client.get("/", headers={"X-Forwarded-Proto": "https"}, environ_base=PROXY)
    assert "Strict-Transport-Security" not in r.headers
