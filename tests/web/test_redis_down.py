"""Redis unreachable (issue #22 item 5): sign-in, the slots API and the other rate-limited routes
answer as usual (never a 500), the limits still hold, and the outage is logged once, not per
request. Redis here is a loopback port nobody listens on (bound, then closed: connection refused)."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest

from retreat import create_app
from retreat.accounts import signin_limits
from retreat.core import throttled_log
from retreat.extensions import limiter
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import base_config

ADDRESS = "203.0.113.90"
EMAIL = "redis-down@example.com"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def dead_redis_app():
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = create_app(base_config(
        RATELIMIT_ENABLED=True, REDIS_URL=url, RATELIMIT_STORAGE_URI=url,
        LOGIN_RATE_LIMIT="50 per hour", LOGIN_PAIR_RATE_LIMIT="3 per hour", LOGIN_EMAIL_RATE_LIMIT="20 per hour",
        PASSWORD_RESET_RATE_LIMIT="2 per hour", CONSULT_API_SLOTS_RATE_LIMIT="4 per hour"))
    throttled_log.reset()
    yield app
    limiter._storage_dead = False  # the shared extension: the next app starts on its own storage
    limiter.enabled = False  # the other tests' app runs without limits
    throttled_log.reset()


def _client(app):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ADDRESS
    return c


def test_sign_in_with_redis_down_works_and_still_limits(dead_redis_app, db, caplog):
    factories.user("participant", email=EMAIL)
    db.session.commit()
    c = _client(dead_redis_app)
    with caplog.at_level(logging.WARNING):
        assert c.post("/account/login", data={"email": EMAIL, "password": factories.PASSWORD}).status_code == 302
        c = _client(dead_redis_app)
        codes = [c.post("/account/login", data={"email": EMAIL, "password": "wrong-password-x"}).status_code
                 for _ in range(4)]
        assert codes == [422, 422, 422, 429]  # the pair limit holds (counted in the database meanwhile)
        r = c.post("/account/login", data={"email": EMAIL, "password": factories.PASSWORD})
        assert r.status_code == 429 and "Too many attempts" in r.get_data(as_text=True)
        # another address still signs in
        other = dead_redis_app.test_client()
        other.environ_base["REMOTE_ADDR"] = "203.0.113.91"
        assert other.post("/account/login", data={"email": EMAIL, "password": factories.PASSWORD}).status_code == 302
    warned = [r for r in caplog.records if r.name == "retreat.accounts.signin_limits"]
    assert len(warned) == 1 and "Redis unreachable" in warned[0].getMessage()
    assert warned[0].levelno == logging.WARNING


def test_flask_limiter_routes_fall_back_to_memory(dead_redis_app, db, caplog):
    factories.user("participant", email=EMAIL)
    db.session.commit()
    c = _client(dead_redis_app)
    today = now_utc().date()
    query = {"start": today.isoformat(), "end": (today + timedelta(days=2)).isoformat(), "tz": "UTC"}
    with caplog.at_level(logging.WARNING):
        slots = [c.get("/api/v1/consultations/slots", query_string=query).status_code for _ in range(5)]
        forgot = [c.post("/account/forgot-password", data={"email": EMAIL}).status_code for _ in range(3)]
        assert c.post("/consult/details", data={}).status_code in (302, 422)
    assert slots == [200] * 4 + [429]  # the limit is enforced by this process's in-memory counts
    assert forgot == [200, 200, 429]
    fallback = [r for r in caplog.records if "falling back to in-memory" in r.getMessage()]
    assert len(fallback) == 1 and fallback[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # nothing treated as a crash


def test_sign_in_limits_use_redis_again_once_it_answers(app, db, monkeypatch):
    """After a failure Redis is left alone for ``REDIS_RETRY_SECONDS``, then tried again."""
    redis = pytest.importorskip("redis")
    live = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    try:
        live.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    live.flushdb()
    throttled_log.reset()
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{_closed_port()}/0"
    clock = [1000.0]
    monkeypatch.setattr(signin_limits, "monotonic", lambda: clock[0])
    try:
        now = now_utc()
        counters = list(signin_limits._counters("back@example.com", "10.1.1.1", now).values())
        signin_limits.add_failure(counters)  # Redis refuses: counted in the database
        assert signin_limits.counts(counters) == [1, 1, 1]
        app.config["REDIS_URL"] = "redis://127.0.0.1:6379/13"
        app.extensions.pop("sign_in_limits_redis", None)
        signin_limits.add_failure(counters)  # within the retry pause: still the database
        assert signin_limits.counts(counters) == [2, 2, 2] and live.keys("*") == []
        clock[0] += signin_limits.REDIS_RETRY_SECONDS + 0.1
        signin_limits.add_failure(counters)  # Redis again
        assert len(live.keys("retreat:sign-in:*")) == 3
    finally:
        app.config["REDIS_URL"] = ""
        app.extensions.pop("sign_in_limits_redis", None)
        app.extensions.pop("sign_in_limits_redis_down_until", None)
        live.flushdb()
        throttled_log.reset()


def test_throttled_log_writes_once_per_interval(monkeypatch, caplog):
    from retreat.core import throttled_log as tl

    clock = [50.0]
    monkeypatch.setattr(tl, "monotonic", lambda: clock[0])
    tl.reset()
    log = logging.getLogger("retreat.test.throttled")
    with caplog.at_level(logging.WARNING, logger="retreat.test.throttled"):
        assert tl.warning(log, "k", "down: %s", "a", every=10) is True
        assert tl.warning(log, "k", "down: %s", "b", every=10) is False
        assert tl.warning(log, "other", "other key", every=10) is True
        clock[0] += 10.5
        assert tl.warning(log, "k", "down: %s", "c", every=10) is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["down: a", "other key", "down: c (1 similar warnings in the last 10 s not logged)"]
    tl.reset()
