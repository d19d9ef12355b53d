"""APScheduler (3.x): the clock that triggers services. Holds no business state.

Scheduled work is data (rows with ``due_at``); the scheduler only calls "do what is due" every
few seconds. Each domain registers its jobs in ``retreat.core.jobs`` by function reference::

    from retreat.core import jobs
    jobs.register("seats.expire_holds", sweep_expired_holds, seconds=30)   # sweep_expired_holds(now)

Each run happens in an app context and ends with one commit (rollback and a logged traceback
on error; the scheduler never stops because a job failed). Only the process holding the
dispatch lock runs jobs: a PostgreSQL advisory lock held on a dedicated connection, or on SQLite
an ``fcntl`` lock on ``instance/scheduler.lock``. So `flask scheduler run` processes and web
workers with ``SCHEDULER_IN_PROCESS=1`` can coexist: one of them does the work, another takes
over when it dies.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import zlib
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import text

from retreat.core import jobs
from retreat.extensions import db
from retreat.timeutil import now_utc

log = logging.getLogger("retreat.scheduler")

scheduler_cli = AppGroup("scheduler", help="Run the background scheduler.")

LOCK_KEY = zlib.crc32(b"retreat.scheduler") & 0x7FFFFFFF


PeriodicJob = jobs.PeriodicJob
register_periodic = jobs.register  # tests and plug-ins: register_periodic(name, func, seconds=...)
unregister_periodic = jobs.unregister
registered_jobs = jobs.registered
stopping = jobs.stopping


# --------------------------------------------------------------------------------------------
# Running one job
# --------------------------------------------------------------------------------------------


def run_job(app: Flask, job: PeriodicJob, *, lock: DispatchLock | None = None,
            now: datetime | None = None) -> bool:
    """Run one job in an app context with one commit. Returns False if it failed or was skipped."""
    if lock is not None and not lock.acquire():
        return False
    with app.app_context():
        try:
            job.func(now or now_utc())
            db.session.commit()
            return True
        except Exception:
            db.session.rollback()
            log.exception("scheduled job %s failed", job.name)
            return False
        finally:
            db.session.remove()


# --------------------------------------------------------------------------------------------
# The lock: one process runs the jobs
# --------------------------------------------------------------------------------------------


class DispatchLock:
    """Held for the life of the process once acquired; ``acquire()`` is cheap to call every tick."""

    def __init__(self, app: Flask):
        self.app = app
        self._mutex = threading.Lock()
        self._conn = None
        self._fd: int | None = None
        with app.app_context():
            self.engine = db.engine
        self.postgres = self.engine.dialect.name == "postgresql"
        self.path = Path(app.instance_path) / "scheduler.lock"

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self) -> bool:
        with self._mutex:
            return self._acquire_pg() if self.postgres else self._acquire_file()

    def _acquire_pg(self) -> bool:
        if self._conn is not None:
            try:  # still connected means still held
                self._conn.exec_driver_sql("SELECT 1")
                self._conn.commit()
                return True
            except Exception:
                log.warning("scheduler lock connection lost; trying to take the lock again")
                self._drop_conn()
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            log.info("scheduler lock taken (advisory lock %s)", LOCK_KEY)
            return True
        conn.close()
        return False

    def _drop_conn(self) -> None:
        try:
            self._conn.invalidate()
            self._conn.close()
        except Exception:  # pragma: no cover - best effort on a dead connection
            pass
        self._conn = None

    def _acquire_file(self) -> bool:
        import fcntl

        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        log.info("scheduler lock taken (%s)", self.path)
        return True

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                    self._conn.commit()
                    self._conn.close()
                except Exception:  # pragma: no cover
                    self._drop_conn()
                self._conn = None
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the flock
                self._fd = None


# --------------------------------------------------------------------------------------------
# Building and running the scheduler
# --------------------------------------------------------------------------------------------


def build_scheduler(app: Flask, scheduler_cls, lock: DispatchLock | None):
    """An APScheduler with one interval job per registered periodic job."""
    sched = scheduler_cls(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for job in registered_jobs().values():
        seconds = job.seconds or int(app.config.get("DISPATCH_INTERVAL_SECONDS") or 5)
        sched.add_job(run_job, "interval", seconds=seconds, args=[app, job], kwargs={"lock": lock},
                      id=job.name, name=job.name, next_run_time=now_utc(), misfire_grace_time=seconds)
    return sched


def _cli_command(argv: list[str]) -> str | None:
    """The flask sub-command in ``argv`` (``flask --app wsgi run`` -> ``run``)."""
    args, i = argv[1:], 0
    while i < len(args):
        a = args[i]
        if a in ("--app", "-A", "--env-file", "-e"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return None


def start_in_process(app: Flask):
    """Development: run the scheduler in the web process (only one process does the work)."""
    if app.config.get("TESTING"):
        return None
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true" and _cli_command(sys.argv) != "run":
        return None  # flask db upgrade, flask scheduler run, ... : not a web server
    from apscheduler.schedulers.background import BackgroundScheduler

    lock = DispatchLock(app)
    sched = build_scheduler(app, BackgroundScheduler, lock)
    sched.start()
    app.extensions["retreat.scheduler"] = sched
    app.extensions["retreat.scheduler_lock"] = lock

    def _stop():
        jobs.request_stop()
        if sched.running:
            sched.shutdown(wait=True)
        lock.release()

    atexit.register(_stop)
    log.info("in-process scheduler started (jobs run only in the process holding the lock)")
    return sched


@scheduler_cli.command("run")
@with_appcontext
def scheduler_run():
    """Run the scheduler in this process until SIGTERM/SIGINT (finishes the current batch)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lock = DispatchLock(app)
    sched = build_scheduler(app, BlockingScheduler, lock)

    def _shutdown(signum, _frame):
        log.info("signal %s: finishing the current batch, then stopping", signum)
        jobs.request_stop()
        try:
            sched.shutdown(wait=True)
        except Exception:  # not running yet / already stopping
            pass

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    names = ", ".join(f"{j.name} ({j.trigger.interval.total_seconds():g}s)" for j in sched.get_jobs())
    click.echo(f"scheduler started (pid {os.getpid()}): {names}")
    if not jobs.stopping():
        sched.start()
    lock.release()
    db.engine.dispose()
    click.echo("scheduler stopped")


@scheduler_cli.command("jobs")
def scheduler_jobs():
    """List the registered periodic jobs."""
    for job in registered_jobs().values():
        click.echo(f"{job.name:<30} every {job.seconds or 'DISPATCH_INTERVAL_SECONDS'} s")
