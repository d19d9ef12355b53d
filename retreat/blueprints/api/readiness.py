"""``GET /readyz``: what this instance depends on, for monitoring and load balancers (issue #22.5).

``/healthz`` stays the cheap liveness probe (the database answers: 200, else 503). ``/readyz``
reports each dependency::

    {"status": "ok" | "degraded" | "fail",
     "checks": {"database":  {"ok": true, "ms": 0.4},
                "redis":     {"configured": true, "ok": false, "ms": 0.3, "error": "ConnectionError: ..."},
                "smtp":      {"configured": true, "ok": true, "ms": 2.1},
                "scheduler": {"leader": true, "holder_pid": 4242}}}

Only the database makes it fail (503): without it nothing works, so a load balancer should take
the instance out. Redis (rate-limit counts fall back, see ``retreat.extensions``), SMTP (mail waits
in the outbox) and a missing scheduler leader (jobs wait) leave the instance able to serve: 200
with ``"degraded"``, so that one SMTP outage does not pull every instance at once. An unconfigured
dependency (no ``REDIS_URL``, no ``SMTP_HOST``: the file transport) is ``"configured": false`` and
counts as fine. The scheduler holds a PostgreSQL advisory lock (``retreat.scheduler.LOCK_KEY``);
``pg_locks`` says whether some session holds it and which backend. On SQLite the lock is a file
lock: ``"leader": null, "state": "unknown"``.

Each check has a short timeout (``READINESS_TIMEOUT_SECONDS``, default 1) and the whole answer is
cached per process for ``READINESS_CACHE_SECONDS`` (default 2), so the endpoint cannot be used to
hammer Redis or the mail server.
"""

from __future__ import annotations

import smtplib
import threading
from time import monotonic, perf_counter

from flask import Flask, current_app, jsonify
from sqlalchemy import text

from retreat.extensions import db
from retreat.scheduler import LOCK_KEY

_cache_lock = threading.Lock()


def _timeout() -> float:
    return float(current_app.config.get("READINESS_TIMEOUT_SECONDS", 1.0))


def _error(err: BaseException) -> str:
    return type(err).__name__  # no host names or addresses: the endpoint is public


def _ms(start: float) -> float:
    return round((perf_counter() - start) * 1000, 1)


def check_database() -> dict:
    start = perf_counter()
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True, "ms": _ms(start)}
    except Exception as err:  # noqa: BLE001 - any failure means "not ready"
        db.session.rollback()
        return {"ok": False, "ms": _ms(start), "error": _error(err)}


def check_redis() -> dict:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return {"configured": False, "ok": True}
    import redis

    client = current_app.extensions.get("readiness_redis")
    if client is None:
        client = current_app.extensions["readiness_redis"] = redis.Redis.from_url(
            url, socket_connect_timeout=_timeout(), socket_timeout=_timeout())
    start = perf_counter()
    try:
        client.ping()
        return {"configured": True, "ok": True, "ms": _ms(start)}
    except (redis.RedisError, OSError) as err:
        return {"configured": True, "ok": False, "ms": _ms(start), "error": _error(err)}


def check_smtp() -> dict:
    """TCP connect and EHLO (no TLS, no login, no mail): the server is there and speaks SMTP."""
    host = current_app.config.get("SMTP_HOST")
    if not host:
        return {"configured": False, "ok": True}
    start = perf_counter()
    try:
        with smtplib.SMTP(host, int(current_app.config.get("SMTP_PORT") or 587), timeout=_timeout()) as smtp:
            code, _ = smtp.ehlo()
            if not 200 <= code < 300:
                return {"configured": True, "ok": False, "ms": _ms(start), "error": f"EHLO answered {code}"}
            smtp.quit()
        return {"configured": True, "ok": True, "ms": _ms(start)}
    except (OSError, smtplib.SMTPException) as err:
        return {"configured": True, "ok": False, "ms": _ms(start), "error": _error(err)}


def check_scheduler(database_ok: bool) -> dict:
    if db.session.get_bind().dialect.name != "postgresql":
        return {"leader": None, "state": "unknown"}
    if not database_ok:
        return {"leader": None, "state": "unknown", "error": "database unreachable"}
    try:
        # pg_try_advisory_lock(bigint): classid = high 32 bits, objid = low 32 bits, objsubid = 1.
        pid = db.session.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = :hi AND objid = :lo"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"),
            {"hi": (LOCK_KEY >> 32) & 0xFFFFFFFF, "lo": LOCK_KEY & 0xFFFFFFFF}).scalar()
    except Exception as err:  # noqa: BLE001
        db.session.rollback()
        return {"leader": None, "state": "unknown", "error": _error(err)}
    return {"leader": pid is not None, "holder_pid": pid}


def readiness() -> tuple[dict, int]:
    database = check_database()
    checks = {"database": database, "redis": check_redis(), "smtp": check_smtp(),
              "scheduler": check_scheduler(database["ok"])}
    if not database["ok"]:
        return {"status": "fail", "checks": checks}, 503
    degraded = (not checks["redis"]["ok"] or not checks["smtp"]["ok"]
                or checks["scheduler"].get("leader") is False)
    return {"status": "degraded" if degraded else "ok", "checks": checks}, 200


def cached_readiness() -> tuple[dict, int]:
    """``readiness()``, computed at most once per ``READINESS_CACHE_SECONDS`` in this process."""
    ttl = float(current_app.config.get("READINESS_CACHE_SECONDS", 2.0))
    ext = current_app.extensions
    with _cache_lock:  # one computation at a time; the others wait and reuse it
        cached = ext.get("readiness_cache")
        if cached is not None and monotonic() - cached[0] < ttl:
            return cached[1], cached[2]
        body, status = readiness()
        ext["readiness_cache"] = (monotonic(), body, status)
        return body, status


def register(app: Flask) -> None:
    @app.get("/readyz")
    def readyz():
        body, status = cached_readiness()
        resp = jsonify(body)
        resp.status_code = status
        resp.headers["Cache-Control"] = "no-store"
        return resp
