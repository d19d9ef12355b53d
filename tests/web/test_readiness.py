"""GET /readyz (issue #22 item 5): the database, Redis, SMTP and the scheduler's lock, each checked
for real (a Redis server, an aiosmtpd server, an advisory lock held from another connection), with
closed loopback ports standing for the ones that are down."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import text

from retreat import create_app
from retreat.extensions import db as _db
from retreat.scheduler import LOCK_KEY
from tests.conftest import base_config, is_postgres
from tests.web.test_finance_query_counts import counting

REDIS = "redis://127.0.0.1:6379/12"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def probe(app, db, monkeypatch):
    """The test app with no readiness cache, and Redis/SMTP set by each test."""
    monkeypatch.setitem(app.config, "READINESS_CACHE_SECONDS", 0)
    monkeypatch.setitem(app.config, "REDIS_URL", "")
    monkeypatch.setitem(app.config, "SMTP_HOST", "")
    for key in ("readiness_cache", "readiness_redis"):
        app.extensions.pop(key, None)
    yield app
    for key in ("readiness_cache", "readiness_redis"):
        app.extensions.pop(key, None)


@pytest.fixture()
def live_redis():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return REDIS


@pytest.fixture()
def scheduler_leader(app):
    """Another session holding the scheduler's advisory lock, as `flask scheduler run` does."""
    if not is_postgres():
        pytest.skip("the advisory lock is PostgreSQL's")
    conn = _db.engine.connect()
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    conn.commit()
    yield pid
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
    conn.commit()
    conn.close()


def test_all_up_is_ok(probe, live_redis, smtp_server, scheduler_leader, monkeypatch):
    monkeypatch.setitem(probe.config, "REDIS_URL", live_redis)
    for key, value in smtp_server.config().items():
        monkeypatch.setitem(probe.config, key, value)
    r = probe.test_client().get("/readyz")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["status"] == "ok", body
    checks = body["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"] == {"configured": True, "ok": True, "ms": checks["redis"]["ms"]}
    assert checks["smtp"]["configured"] is True and checks["smtp"]["ok"] is True
    assert checks["scheduler"] == {"leader": True, "holder_pid": scheduler_leader}
    assert smtp_server.count() == 0  # EHLO only: nothing sent


def test_redis_and_smtp_down_is_degraded_not_unready(probe, monkeypatch):
    monkeypatch.setitem(probe.config, "REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    monkeypatch.setitem(probe.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(probe.config, "SMTP_PORT", _closed_port())
    r = probe.test_client().get("/readyz")
    assert r.status_code == 200  # the instance still serves: a load balancer keeps it
    body = r.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["redis"]["error"] == "ConnectionError"
    assert body["checks"]["smtp"]["ok"] is False and body["checks"]["smtp"]["error"]
    assert "127.0.0.1" not in r.get_data(as_text=True)  # public: no addresses in the answer
    if is_postgres():
        assert body["checks"]["scheduler"] == {"leader": False, "holder_pid": None}


def test_smtp_server_that_stopped_is_reported(probe, smtp_server, monkeypatch):
    for key, value in smtp_server.config().items():
        monkeypatch.setitem(probe.config, key, value)
    c = probe.test_client()
    assert c.get("/readyz").get_json()["checks"]["smtp"]["ok"] is True
    smtp_server.controller.stop()
    try:
        body = c.get("/readyz").get_json()
        assert body["checks"]["smtp"]["ok"] is False and body["status"] == "degraded"
    finally:
        from aiosmtpd.controller import Controller

        # back up on the same port (a stopped controller cannot start again; the fixture stops this one)
        smtp_server.controller = Controller(smtp_server, hostname=smtp_server.host, port=smtp_server.port)
        smtp_server.controller.start()
    assert c.get("/readyz").get_json()["checks"]["smtp"]["ok"] is True


def test_unconfigured_redis_and_smtp_count_as_fine(probe):
    body = probe.test_client().get("/readyz").get_json()
    assert body["checks"]["redis"] == {"configured": False, "ok": True}
    assert body["checks"]["smtp"] == {"configured": False, "ok": True}
    if not is_postgres():
        assert body["checks"]["scheduler"] == {"leader": None, "state": "unknown"}


def test_answer_is_cached_and_costs_two_statements(probe, monkeypatch):
    monkeypatch.setitem(probe.config, "READINESS_CACHE_SECONDS", 60)
    c = probe.test_client()
    with counting() as first:
        assert c.get("/readyz").status_code == 200
    with counting() as second:
        assert c.get("/readyz").status_code == 200
    assert len(first) == (2 if is_postgres() else 1), first  # SELECT 1 (+ pg_locks)
    assert second == []  # within READINESS_CACHE_SECONDS: no dependency is asked again


def test_database_down_is_503():
    # No `db`/`client` fixture here: those bind the session to the working test database.
    down = create_app(base_config(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/x",
                                  SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}}))
    r = down.test_client().get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "fail" and body["checks"]["database"]["ok"] is False
    assert body["checks"]["scheduler"]["leader"] is None
