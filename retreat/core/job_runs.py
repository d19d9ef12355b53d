"""Scheduler bookkeeping: who holds its lock, and the last run of each scheduled job: when it started, how long it took, whether it succeeded and
which process ran it (``host:pid``). Written by the scheduler after every run (one upsert in its
own short transaction), read by ``/metrics`` (``retreat_scheduler_job_last_run_timestamp_seconds``,
``retreat_scheduler_job_last_duration_seconds``). Holds no business state.
"""

from __future__ import annotations

import os
import socket
import zlib
from datetime import datetime
from pathlib import Path

from sqlalchemy import Boolean, Float, Integer, String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from retreat.extensions import db

LOCK_KEY = zlib.crc32(b"retreat.scheduler") & 0x7FFFFFFF  # the scheduler's advisory lock
LOCK_APPLICATION_NAME = "retreat-scheduler"  # application_name of the connection holding the lock
LOCK_FILE = "scheduler.lock"  # SQLite: an flock on <instance>/scheduler.lock, holding "host:pid"


def process_name() -> str:
    """This process, as the logs and /metrics name a lock holder: ``host:pid``."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def pg_lock_holder(conn) -> str | None:
    """``host:pid`` of the process holding the scheduler's advisory lock (from the application_name
    of its connection), or None when nobody holds it. pg_stat_activity is a snapshot kept for the
    rest of a transaction: it is cleared first, so a long transaction sees a change of holder."""
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = conn.execute(text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k "
        # advisory locks are per database, but pg_locks lists the whole cluster's
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"),
        {"k": LOCK_KEY}).first()
    if row is None:
        return None
    name = str(row[0] or "")
    return name[len(LOCK_APPLICATION_NAME) + 1:] if name.startswith(LOCK_APPLICATION_NAME + " ") else (name or "?")


def file_lock_holder(path: Path, *, check: bool = False) -> str | None:
    """What the lock file says (``host:pid``); with ``check``, None unless the flock is really held
    (probed with a shared lock, released at once)."""
    try:
        holder = path.read_text().strip() or None
    except OSError:
        return None
    if check and holder:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return holder  # held exclusively: the scheduler is running
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
    return holder


class JobRun(db.Model):
    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column()
    duration_seconds: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    runner: Mapped[str | None] = mapped_column(String(100))
    runs: Mapped[int] = mapped_column(Integer, default=1)
    failures: Mapped[int] = mapped_column(Integer, default=0)


def record(name: str, *, started_at: datetime, finished_at: datetime, ok: bool, runner: str) -> None:
    """Upsert the last run of ``name`` (in the caller's transaction; the caller commits)."""
    values = dict(started_at=started_at, finished_at=finished_at, ok=ok, runner=runner[:100],
                  duration_seconds=max((finished_at - started_at).total_seconds(), 0.0))
    table = JobRun.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(name=name[:100], runs=1, failures=0 if ok else 1, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=dict(
            values, runs=table.c.runs + 1, failures=table.c.failures + (0 if ok else 1)))
        db.session.execute(stmt)
        return
    row = db.session.get(JobRun, name[:100])  # pragma: no cover - other databases
    if row is None:
        db.session.add(JobRun(name=name[:100], runs=1, failures=0 if ok else 1, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.runs += 1
        row.failures += 0 if ok else 1


def last_runs() -> list[JobRun]:
    return list(db.session.scalars(select(JobRun).order_by(JobRun.name)))
