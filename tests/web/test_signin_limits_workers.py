"""Sign-in limits hold across worker processes (issue #16, item 6).

Two gunicorn servers (one worker each, so that which process answers is not left to the kernel)
share one database, and, in the Redis case, one Redis; requests alternate between them over
HTTP. The 429 comes at the configured count in total, not per process; failures from other
addresses do not keep the owner out from the address they signed in from before; Redis keys
hold no email address."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from retreat import create_app
from retreat.extensions import db as _db
from tests import factories
from tests.conftest import TEST_DATABASE_URL, base_config, fresh_schema, is_postgres

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sign-in-limits-workers-secret-0123456789abcdef"
REDIS_URL = "redis://127.0.0.1:6379/14"
OWNER, OWNER_PASSWORD, OWNER_ADDRESS = "owner@example.com", "owner-long-password-1", "203.0.113.50"
LIMITS = {"LOGIN_RATE_LIMIT": "6 per hour", "LOGIN_PAIR_RATE_LIMIT": "3 per hour",
          "LOGIN_EMAIL_RATE_LIMIT": "4 per hour"}  # hour windows: a run seldom straddles one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url(tmp_path: Path) -> str:
    if not is_postgres():
        return f"sqlite:///{tmp_path / 'workers.sqlite3'}"
    name = "retreat_signin_workers"
    admin = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    import sqlalchemy

    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def _prepare(url: str) -> None:
    """A fresh schema and the owner's account, committed (the servers are other processes)."""
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY=SECRET))
    with app.app_context():
        fresh_schema()
        factories.user("participant", email=OWNER, password=OWNER_PASSWORD)
        _db.session.commit()
        _db.engine.dispose()


@pytest.fixture(params=["database", "redis"])
def servers(request, tmp_path):
    url = _database_url(tmp_path)
    _prepare(url)
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET, RETREAT_INSTANCE_DIR=str(tmp_path),
               RATELIMIT_ENABLED="1", TRUSTED_PROXY_HOPS="1", SCHEDULER_IN_PROCESS="0", RETREAT_ENV="development",
               CLINICAL_DATA_KEYS=base_config()["CLINICAL_DATA_KEYS"], REDIS_URL="", **LIMITS,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        env["REDIS_URL"] = REDIS_URL
    procs, bases = [], []
    for _ in range(2):
        port = _free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
             "wsgi:app"], cwd=str(ROOT), env=env, start_new_session=True))
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base, proc in zip(bases, procs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "gunicorn exited"
                try:
                    if requests.get(base + "/account/login", timeout=15).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield request.param, bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


class Visitor:
    """One browser at one client address (nginx's X-Forwarded-For), on whichever server it is sent to."""

    def __init__(self, address: str):
        self.address, self.http = address, requests.Session()

    def sign_in(self, base: str, email: str, password: str) -> int:
        page = self.http.get(base + "/account/login", headers={"X-Forwarded-For": self.address}, timeout=10)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        r = self.http.post(base + "/account/login", data={"csrf_token": token, "email": email, "password": password},
                           headers={"X-Forwarded-For": self.address}, allow_redirects=False, timeout=30)
        return r.status_code


def test_the_limits_count_across_processes_and_spare_the_owners_address(servers):
    storage, (a, b) = servers
    # The owner signs in once from their usual address (on one server), then signs out (a new browser).
    assert Visitor(OWNER_ADDRESS).sign_in(a, OWNER, OWNER_PASSWORD) == 302

    # One address guessing at many accounts, alternating between the servers: 6 in total, then 429.
    guesser = Visitor("198.51.100.1")
    codes = [guesser.sign_in((a, b)[i % 2], f"x{i}@example.com", "wrong-password-x") for i in range(8)]
    assert codes == [422] * 6 + [429] * 2

    # Many addresses guessing at the owner's account: 4 in total, then unfamiliar addresses get 429 ...
    codes = [Visitor(f"198.51.100.{10 + i}").sign_in((a, b)[i % 2], OWNER, "wrong-password-x") for i in range(6)]
    assert codes == [422] * 4 + [429] * 2
    # ... even with the right password; the owner, from the address they signed in from before, gets in.
    assert Visitor("198.51.100.30").sign_in(b, OWNER, OWNER_PASSWORD) == 429
    assert Visitor(OWNER_ADDRESS).sign_in(b, OWNER, OWNER_PASSWORD) == 302
    assert Visitor(OWNER_ADDRESS).sign_in(a, OWNER, OWNER_PASSWORD) == 302

    if storage == "redis":
        import redis

        keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).keys("*")]
        assert keys and all(k.startswith("retreat:sign-in:") for k in keys if "sign-in" in k)
        assert not any("example.com" in k or "198.51.100" in k for k in keys), keys
