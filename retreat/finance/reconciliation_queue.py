"""Queued reconciliation runs: the one active run, its window, and claiming it.

At most one run is queued or running at a time (``active_slot``, unique): a second click returns
the run already there. A run's worker beats a heartbeat after every page; a running run with no
heartbeat for ``STALE_AFTER`` died with its process and is failed, which frees the slot.

A finished run keeps a ``cursor``: the creation time of its oldest open problem (or its end when
there is none). The next run without an explicit ``since`` starts there, so problems are
re-checked until resolved.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.accounts.models import User
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.finance.reconciliation_models import ReconciliationRun, RunStatus

STALE_AFTER = timedelta(minutes=15)  # a running run with no heartbeat for this long died


def check_window(since: datetime | None, until: datetime | None, *, now: datetime) -> None:
    if since is not None and since > now:
        raise ValidationFailed("The start date is in the future: nothing can be reconciled yet.", field="since")
    if since is not None and until is not None and until < since:
        raise ValidationFailed("The end date is before the start date.", field="until")


def active_run() -> ReconciliationRun | None:
    return db.session.scalar(select(ReconciliationRun).where(ReconciliationRun.active_slot.is_(True)))


def last_done_run() -> ReconciliationRun | None:
    return db.session.scalar(select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.DONE.value)
                             .order_by(ReconciliationRun.finished_at.desc(), ReconciliationRun.id.desc()).limit(1))


def default_since() -> datetime | None:
    """Where a run with no explicit start begins: the last finished run's cursor (None: all of Stripe)."""
    last = last_done_run()
    return last.cursor if last is not None else None



def fail_stale(*, now: datetime) -> int:
    """Runs whose worker died (no heartbeat for ``STALE_AFTER``) are failed, freeing the slot."""
    limit = now - STALE_AFTER
    stale = locking.lock_where(select(ReconciliationRun).where(
        ReconciliationRun.status == RunStatus.RUNNING.value,
        func.coalesce(ReconciliationRun.heartbeat_at, ReconciliationRun.started_at) < limit), ReconciliationRun)
    for run in stale:
        run.status = RunStatus.FAILED.value
        run.active_slot = None
        run.error = "Interrupted: the process running it stopped."
        run.finished_at = now
    return len(stale)


def queue(*, since: datetime | None, until: datetime | None, now: datetime, actor: User | None,
          ctx: RequestContext | None = None, start: bool = False) -> tuple[ReconciliationRun, bool]:
    """A new run (queued, or running at once with ``start``), or the one already queued or running
    and False. Caller commits."""
    check_window(since, until, now=now)
    fail_stale(now=now)
    existing = active_run()
    if existing is not None:
        return existing, False
    if since is None:
        since = default_since()
        if since is not None and until is not None and until < since:
            raise ValidationFailed("The end date is before where the last run stopped "
                                   f"({since:%Y-%m-%d %H:%M} UTC): give a start date.", field="until")
    run = ReconciliationRun(status=(RunStatus.RUNNING if start else RunStatus.QUEUED).value, active_slot=True,
                            since=since, until=until, requested_by_id=actor.id if actor else None,
                            requested_at=now, started_at=now if start else None, heartbeat_at=now if start else None,
                            phase="" if start else "queued")
    try:
        with db.session.begin_nested():
            db.session.add(run)
            db.session.flush()
    except IntegrityError:  # another request queued one at the same moment
        existing = active_run()
        if existing is None:
            raise
        return existing, False
    audit.record("finance.reconciliation_queued", actor=actor, object_type="reconciliation_run", object_id=run.id,
                 ctx=ctx, now=now, details={"since": since.isoformat() if since else None,
                                            "until": until.isoformat() if until else None})
    return run, True


def claim(run_id: int, *, now: datetime) -> bool:
    """Queued -> running, once (a conditional update). Caller commits."""
    result = db.session.execute(update(ReconciliationRun).where(
        ReconciliationRun.id == run_id, ReconciliationRun.status == RunStatus.QUEUED.value).values(
        status=RunStatus.RUNNING.value, started_at=now, heartbeat_at=now, phase="starting"))
    return result.rowcount == 1

