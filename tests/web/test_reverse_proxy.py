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


def test_documented_environment_variables_are_read(monkeypatch):
    """README's deployment settings reach the app from the environment."""
    from retreat.config import load_config

    env = {"TRUSTED_PROXY_HOPS": "1", "DATABASE_STATEMENT_TIMEOUT_MS": "15000", "DATABASE_LOCK_TIMEOUT_MS": "5000",
           "DATABASE_CONNECT_TIMEOUT": "3", "DATABASE_POOL_SIZE": "5", "DATABASE_MAX_OVERFLOW": "2",
           "OUTBOX_BACKOFF_BASE_SECONDS": "30", "OUTBOX_BACKOFF_CAP_SECONDS": "3600",
           "CONSULT_API_SLOTS_RATE_LIMIT": "60 per minute", "CONSULT_API_BOOK_RATE_LIMIT": "5 per minute",
           "CONSULT_BOOK_RATE_LIMIT": "7 per minute", "UPLOAD_DIR": "/srv/retreat/uploads"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SECRET_KEY", "x" * 40)  # nothing generated on disk
    cfg = load_config()
    assert {k: str(cfg[k]) for k in env} == env
