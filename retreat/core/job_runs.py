"""The last run of each scheduled job: when it started, how long it took, whether it succeeded and
which process ran it (``host:pid``). Written by the scheduler after every run (one upsert in its
own short transaction), read by ``/metrics`` (``retreat_scheduler_job_last_run_timestamp_seconds``,
``retreat_scheduler_job_last_duration_seconds``). Holds no business state.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from retreat.extensions import db


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
