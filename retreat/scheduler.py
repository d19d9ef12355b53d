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
import time
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import text

from retreat.core import job_runs, jobs
from retreat.extensions import db
from retreat.timeutil import now_utc

log = logging.getLogger("retreat.scheduler")

scheduler_cli = AppGroup("scheduler", help="Run the background scheduler.")

LOCK_KEY = job_runs.LOCK_KEY
LOCK_APPLICATION_NAME = job_runs.LOCK_APPLICATION_NAME
process_name = job_runs.process_name
pg_lock_holder = job_runs.pg_lock_holder
file_lock_holder = job_runs.file_lock_holder


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
    """Run one job in an app context with one commit. Returns False if it failed or was skipped.

    Logs the run's start (DEBUG) and end with its duration and what it reports (INFO when it did
    something or failed), and records its last run in ``job_runs`` (for /metrics)."""
    if lock is not None and not lock.acquire():
        return False
    with app.app_context():
        started_at, clock = now_utc(), time.perf_counter()
        log.debug("job %s started", job.name)
        ok = False
        try:
            result = job.func(now or now_utc())
            db.session.commit()
            ok = True
        except Exception:
            db.session.rollback()
            log.exception("scheduled job %s failed after %.3fs", job.name, time.perf_counter() - clock)
            result = None
        duration = time.perf_counter() - clock
        try:
            if ok:
                summary = _summary(result)
                level = logging.INFO if summary else logging.DEBUG
                log.log(level, "job %s done in %.3fs%s", job.name, duration, f": {summary}" if summary else "",
                        extra={"job": job.name, "duration_s": round(duration, 3)})
            _record_run(job.name, started_at, ok)
            return ok
        finally:
            db.session.remove()


def _summary(result) -> str:
    """What a job's return value says it did ("" when nothing): a count, or its counters."""
    if result is None or result is False:
        return ""
    if isinstance(result, bool):
        return ""
    if isinstance(result, int | float):
        return f"{result} done" if result else ""
    if isinstance(result, list | tuple | set | dict):
        return f"{len(result)} done" if result else ""
    counts = {k: v for k, v in vars(result).items() if isinstance(v, int) and not isinstance(v, bool)} \
        if hasattr(result, "__dict__") else {}
    if counts:
        return str(result) if any(counts.values()) else ""
    return str(result)


def _record_run(name: str, started_at: datetime, ok: bool) -> None:
    """The job's last run, for /metrics; a failure to record it never fails the job."""
    try:
        job_runs.record(name, started_at=started_at, finished_at=now_utc(), ok=ok, runner=process_name())
        db.session.commit()
    except Exception as err:  # noqa: BLE001 - bookkeeping only
        db.session.rollback()
        log.warning("could not record the run of job %s: %s", name, err)


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
        self.name = process_name()
        self._seen_holder: str | None = None  # the other holder last logged, so it is said once

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
                log.warning("scheduler lock lost by %s (its connection dropped); trying to take it again", self.name)
                self._drop_conn()
        conn = self.engine.connect()
        try:
            # Who holds the lock is visible to the others (and to /metrics) in pg_stat_activity.
            conn.execute(text("SELECT set_config('application_name', :n, false)"),
                         {"n": f"{LOCK_APPLICATION_NAME} {self.name}"[:63]})
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            holder = None if got else pg_lock_holder(conn)
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            self._seen_holder = None
            log.info("scheduler lock taken by %s (advisory lock %s): this process runs the jobs", self.name, LOCK_KEY)
            return True
        conn.close()
        self._standing_by(holder)
        return False

    def _standing_by(self, holder: str | None) -> None:
        holder = holder or "another process"
        if holder != self._seen_holder:
            log.info("scheduler lock held by %s; %s stands by", holder, self.name)
            self._seen_holder = holder

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
            self._standing_by(file_lock_holder(self.path))
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.name}\n".encode())
        self._fd = fd
        self._seen_holder = None
        log.info("scheduler lock taken by %s (%s): this process runs the jobs", self.name, self.path)
        return True

    def release(self) -> None:
        with self._mutex:
            if self.held:
                log.info("scheduler lock released by %s", self.name)
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

    stoppers: list[threading.Thread] = []

    def _stop(signame: str) -> None:
        log.info("%s received by %s: finishing the current batch, then stopping", signame, process_name())
        for _ in range(100):  # a signal during sched.start(): wait until it runs, then stop it
            try:
                sched.shutdown(wait=True)
                return
            except Exception:  # not running yet / already stopping
                if not sched.running and started.is_set():
                    return
                time.sleep(0.1)

    def _shutdown(signum, _frame):
        # The handler only asks: stopping (waiting for the running batch) happens in a thread, so that a
        # handler interrupting a log line in this thread never waits for a job blocked on that line's lock.
        jobs.request_stop()
        if not stoppers:
            stoppers.append(threading.Thread(target=_stop, args=(signal.Signals(signum).name,),
                                             name="scheduler-stop", daemon=True))
            stoppers[0].start()

    started = threading.Event()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    names = ", ".join(f"{j.name} ({j.trigger.interval.total_seconds():g}s)" for j in sched.get_jobs())
    click.echo(f"scheduler started (pid {os.getpid()}): {names}")
    log.info("scheduler started in %s: %s", process_name(), names)
    if not jobs.stopping():
        sched.start()
    started.set()
    for stopper in stoppers:
        stopper.join()  # the batch in progress is finished before the lock is given up
    lock.release()
    db.engine.dispose()
    log.info("scheduler stopped in %s", process_name())
    click.echo("scheduler stopped")


@scheduler_cli.command("jobs")
def scheduler_jobs():
    """List the registered periodic jobs."""
    for job in registered_jobs().values():
        click.echo(f"{job.name:<30} every {job.seconds or 'DISPATCH_INTERVAL_SECONDS'} s")
