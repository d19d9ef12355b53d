"""The scheduler is only a clock: registered jobs run in an app context with one commit, errors
are logged and never stop it, one process holds the lock, and `flask scheduler run` stops
cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import select

from retreat import scheduler
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.models import OutboxMessage, SiteSetting
from retreat.timeutil import now_utc
from tests.unit.test_dispatcher_concurrency import ROOT, subprocess_env

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_registered_job_runs_with_injected_time_and_commits(committing_app):
    seen = []

    def sweep(now):
        seen.append(now)
        db.session.add(SiteSetting(key="sweep.last", value=now.isoformat()))

    scheduler.register_periodic("test.sweep", sweep, seconds=30)
    try:
        job = scheduler.registered_jobs()["test.sweep"]
        assert job.seconds == 30 and "outbox.dispatch" in scheduler.registered_jobs()
        assert scheduler.run_job(committing_app, job, now=NOW) is True
    finally:
        scheduler.unregister_periodic("test.sweep")
    assert seen == [NOW]
    with committing_app.app_context():
        assert db.session.get(SiteSetting, "sweep.last").value == NOW.isoformat()


def test_a_failing_job_rolls_back_is_logged_and_the_scheduler_keeps_going(committing_app, caplog, monkeypatch):
    from apscheduler.schedulers.background import BackgroundScheduler

    monkeypatch.setattr(scheduler.log, "disabled", False)  # alembic's fileConfig disables loggers

    calls, done = [], threading.Event()

    def flaky(now):
        calls.append(now)
        db.session.add(SiteSetting(key=f"flaky.{len(calls)}", value="x"))
        if len(calls) == 1:
            raise RuntimeError("boom")
        done.set()

    scheduler.register_periodic("test.flaky", flaky, seconds=1)
    try:
        lock = scheduler.DispatchLock(committing_app)
        sched = scheduler.build_scheduler(committing_app, BackgroundScheduler, lock)
        sched.remove_job("outbox.dispatch")
        sched.start()
        try:
            assert done.wait(10), "the job should run again after failing"
        finally:
            sched.shutdown(wait=True)
            lock.release()
    finally:
        scheduler.unregister_periodic("test.flaky")
    assert any("scheduled job test.flaky failed" in r.getMessage() for r in caplog.records)
    with committing_app.app_context():
        keys = set(db.session.scalars(select(SiteSetting.key)))
    assert "flaky.1" not in keys and "flaky.2" in keys  # the failed run's writes were rolled back


def test_only_one_holder_of_the_scheduler_lock(committing_app):
    first, second = scheduler.DispatchLock(committing_app), scheduler.DispatchLock(committing_app)
    try:
        assert first.acquire() and first.acquire()  # re-entrant for its holder
        assert not second.acquire()
        # A job guarded by a lock it cannot take does not run.
        ran = []
        job = scheduler.PeriodicJob("test.guarded", lambda now: ran.append(now), 5)
        assert scheduler.run_job(committing_app, job, lock=second) is False and ran == []
        first.release()
        assert second.acquire()
        assert scheduler.run_job(committing_app, job, lock=second) is True and ran
    finally:
        first.release()
        second.release()


def test_cli_command_detection_for_in_process_mode():
    assert scheduler._cli_command(["flask", "--app", "wsgi", "run", "--port", "5000"]) == "run"
    assert scheduler._cli_command(["flask", "--app", "wsgi", "scheduler", "run"]) == "scheduler"
    assert scheduler._cli_command(["flask", "-A", "wsgi", "--debug", "db", "upgrade"]) == "db"


def test_scheduler_run_dispatches_and_stops_cleanly_on_sigterm(committing_app, smtp_server):
    with committing_app.app_context():
        for i in range(6):
            outbox.enqueue(template="test_notice", dedupe_key=f"sched-{i}", to_email=f"s{i}@example.com", now=now_utc())
        db.session.commit()
    smtp_server.delay = 0.2  # SIGTERM arrives while the batch is being sent
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
        cwd=ROOT, env=subprocess_env(smtp_server, DISPATCH_INTERVAL_SECONDS="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert smtp_server.wait_for(1, timeout=30), "the scheduler should dispatch the due message"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert elapsed < 10
    assert "scheduler started" in out and "outbox.dispatch (1s)" in out and "scheduler stopped" in out
    # The batch in progress was finished and recorded before the process exited.
    assert smtp_server.count() == 6
    with committing_app.app_context():
        assert set(db.session.scalars(select(OutboxMessage.status))) == {"sent"}
    # The lock was released: another process can take it now.
    lock = scheduler.DispatchLock(committing_app)
    try:
        assert lock.acquire()
    finally:
        lock.release()


def test_in_process_schedulers_in_two_workers_dispatch_through_one(committing_app, smtp_server, monkeypatch):
    from retreat import create_app
    from tests.conftest import base_config

    with committing_app.app_context():
        for i in range(5):
            outbox.enqueue(template="test_notice", dedupe_key=f"inproc-{i}", to_email=f"i{i}@example.com", now=now_utc())
        db.session.commit()
    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)  # like gunicorn workers
    workers = [create_app(base_config(TESTING=False, DISPATCH_INTERVAL_SECONDS=1, **smtp_server.config()))
               for _ in range(2)]
    scheds = [scheduler.start_in_process(w) for w in workers]
    try:
        assert all(s is not None and s.running for s in scheds)
        assert smtp_server.wait_for(5, timeout=20)
        time.sleep(1.5)  # another tick or two: nothing is sent twice
        assert sorted(w.extensions["retreat.scheduler_lock"].held for w in workers) == [False, True]
    finally:
        for w, s in zip(workers, scheds, strict=True):
            s.shutdown(wait=True)
            w.extensions["retreat.scheduler_lock"].release()
            with w.app_context():
                db.engine.dispose()
    assert smtp_server.count() == 5
    # TESTING apps and other flask commands never start one.
    assert scheduler.start_in_process(committing_app) is None
