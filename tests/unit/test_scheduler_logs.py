"""The scheduler says at INFO which process (host:pid) takes, holds, loses and releases its lock,
each job run with its duration and what it did, and SIGTERM (issue #22 item 6); each job's last
run is recorded for /metrics."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from retreat import scheduler
from retreat.core.job_runs import JobRun
from retreat.extensions import db
from tests.conftest import base_config, is_postgres
from tests.unit.test_dispatcher_concurrency import ROOT


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "retreat.scheduler"]


def test_the_lock_holder_is_named_at_info(committing_app, caplog, monkeypatch):
    monkeypatch.setattr(scheduler.log, "disabled", False)
    caplog.set_level(logging.INFO, logger="retreat.scheduler")
    me = scheduler.process_name()
    first, second = scheduler.DispatchLock(committing_app), scheduler.DispatchLock(committing_app)
    try:
        assert first.acquire()
        assert not second.acquire() and not second.acquire()  # said once, not at every tick
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()
    got = _messages(caplog)
    assert got[0].startswith(f"scheduler lock taken by {me} ")
    assert got.count(f"scheduler lock held by {me}; {me} stands by") == 1
    assert f"scheduler lock released by {me}" in got
    assert sum(m.startswith(f"scheduler lock taken by {me} ") for m in got) == 2
    assert me.rsplit(":", 1)[1] == str(os.getpid())


@pytest.mark.skipif(not is_postgres(), reason="the advisory lock's holder is read from pg_stat_activity")
def test_the_holder_is_read_from_the_database(committing_app):
    lock = scheduler.DispatchLock(committing_app)
    try:
        assert lock.acquire()
        with committing_app.app_context(), db.engine.connect() as conn:
            assert scheduler.pg_lock_holder(conn) == scheduler.process_name()
    finally:
        lock.release()
    with committing_app.app_context(), db.engine.connect() as conn:
        assert scheduler.pg_lock_holder(conn) is None


def test_each_run_is_logged_with_its_duration_and_recorded(committing_app, caplog, monkeypatch):
    monkeypatch.setattr(scheduler.log, "disabled", False)
    caplog.set_level(logging.INFO, logger="retreat.scheduler")
    busy = scheduler.PeriodicJob("test.busy", lambda now: 3, 5)
    idle = scheduler.PeriodicJob("test.idle", lambda now: 0, 5)
    broken = scheduler.PeriodicJob("test.broken", lambda now: 1 / 0, 5)
    assert scheduler.run_job(committing_app, busy) and scheduler.run_job(committing_app, busy)
    assert scheduler.run_job(committing_app, idle)
    assert not scheduler.run_job(committing_app, broken)
    got = _messages(caplog)
    done = [m for m in got if m.startswith("job test.busy done in ")]
    assert len(done) == 2 and all(m.endswith("s: 3 done") for m in done)
    assert not any(m.startswith("job test.idle") for m in got)  # nothing done: DEBUG only
    assert any(m.startswith("scheduled job test.broken failed after ") for m in got)
    with committing_app.app_context():
        runs = {r.name: r for r in db.session.scalars(select(JobRun))}
    assert runs["test.busy"].runs == 2 and runs["test.busy"].ok and runs["test.busy"].failures == 0
    assert runs["test.busy"].runner == scheduler.process_name() and runs["test.busy"].duration_seconds >= 0
    assert runs["test.broken"].ok is False and runs["test.broken"].failures == 1
    assert runs["test.idle"].finished_at >= runs["test.idle"].started_at


def test_scheduler_run_logs_its_lock_and_sigterm_as_json(committing_app, tmp_path):
    cfg = base_config()
    env = {**os.environ, "DATABASE_URL": cfg["SQLALCHEMY_DATABASE_URI"], "RETREAT_INSTANCE_DIR": str(tmp_path / "i"),
           "SECRET_KEY": cfg["SECRET_KEY"], "CLINICAL_DATA_KEYS": cfg["CLINICAL_DATA_KEYS"],
           "RETREAT_ENV": "testing", "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
           "MAIL_OUTBOX_DIR": str(tmp_path / "mail"), "DISPATCH_INTERVAL_SECONDS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if not line.startswith("{"):
                continue  # a Python warning, not a log line
            lines.append(json.loads(line))
            if lines[-1]["message"].startswith("scheduler lock taken by "):
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    assert proc.returncode == 0, lines
    holder = f"{os.uname().nodename[:60]}:{proc.pid}"
    messages = [x["message"] for x in lines if x["logger"] == "retreat.scheduler"]
    assert any(m.startswith(f"scheduler lock taken by {holder} ") for m in messages), messages
    assert f"SIGTERM received by {holder}: finishing the current batch, then stopping" in messages
    assert f"scheduler lock released by {holder}" in messages
    assert messages[-1] == f"scheduler stopped in {holder}"
    assert all(x["request_id"] == "-" and x["level"] in {"INFO", "WARNING"} for x in lines)
