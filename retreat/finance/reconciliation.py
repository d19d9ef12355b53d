"""Stripe reconciliation: is every dollar in Stripe in the ledger, and every ledger dollar in Stripe?

Running a run, start to end: ``run`` starts one at once (the CLI, the benchmark), the scheduler's
``run_queued`` does the oldest queued one (the finance pages queue them,
``reconciliation_queue``). ``execute`` drives ``reconciliation_matching.Runner`` over Stripe and
the ledger, commits after every page, and at the end saves the counts per category and the
``cursor`` the next run starts from. What an item means and how it is repaired:
``reconciliation_matching``, ``reconciliation_repair``; reading and comparing runs:
``reconciliation_report``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from retreat.accounts.models import User
from retreat.core import jobs
from retreat.core.errors import Conflict, NotFound
from retreat.extensions import db
from retreat.finance import reconciliation_queue, reconciliation_report
from retreat.finance.reconciliation_matching import PAGE_SIZE, Interrupted, Progress, Runner
from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun, RunStatus
from retreat.payments import gateway
from retreat.timeutil import now_utc


def _noop(done: int, total: int) -> None:
    return None


def run_queued(*, now: datetime, should_stop: Callable[[], bool] | None = None) -> int:
    """The scheduler job: run the oldest queued run, if any. Commits. Returns how many ran."""
    reconciliation_queue.fail_stale(now=now)
    run_id = db.session.scalar(select(ReconciliationRun.id).where(
        ReconciliationRun.status == RunStatus.QUEUED.value).order_by(ReconciliationRun.id).limit(1))
    if run_id is None or not reconciliation_queue.claim(run_id, now=now):
        db.session.commit()
        return 0
    db.session.commit()
    execute(run_id, now=now, should_stop=should_stop)
    return 1


def run(*, since: datetime | None = None, until: datetime | None = None, now: datetime,
        actor: User | None = None, progress: Progress | None = None,
        page_size: int = PAGE_SIZE) -> ReconciliationRun:
    """Start a run now (refused while another is queued or running) and execute it. Commits."""
    started, created = reconciliation_queue.queue(since=since, until=until, now=now, actor=actor, start=True)
    if not created:
        db.session.rollback()
        raise Conflict(f"Reconciliation run #{started.id} is already {started.status}; wait for it to finish.")
    db.session.commit()
    return execute(started.id, now=now, progress=progress, page_size=page_size)


def execute(run_id: int, *, now: datetime, progress: Progress | None = None, page_size: int = PAGE_SIZE,
            clock: Callable[[], datetime] = now_utc, should_stop: Callable[[], bool] | None = None
            ) -> ReconciliationRun:
    """Do a claimed (running) run. Commits after every page; a failure marks the run failed
    (a Stripe error is kept as the run's error; anything else is raised after that)."""
    the_run = db.session.get(ReconciliationRun, run_id)
    if the_run is None:
        raise NotFound("No such reconciliation run.")
    if the_run.status != RunStatus.RUNNING:
        raise Conflict(f"Reconciliation run #{run_id} is {the_run.status}, not running.")
    if the_run.until is None:
        the_run.until = the_run.started_at or now  # the window is fixed when the run starts
    the_run.started_at = the_run.started_at or now
    db.session.commit()
    runner = Runner(the_run, progress=progress or _noop, page_size=page_size, clock=clock, should_stop=should_stop)
    try:
        runner.execute()
    except Exception as exc:
        db.session.rollback()
        failed = db.session.get(ReconciliationRun, run_id)
        failed.status = RunStatus.FAILED.value
        failed.active_slot = None
        failed.error = (getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")[:2000]
        failed.finished_at = clock()
        failed.progress_done, failed.progress_total = runner.done, max(runner.total, runner.done)
        db.session.commit()
        if isinstance(exc, (gateway.GatewayError, Interrupted)):
            return failed
        raise
    return _finish(run_id, runner, clock())


def _finish(run_id: int, runner: Runner, at: datetime) -> ReconciliationRun:
    """Done: the counts per category, and the cursor (the oldest open problem, else the window's end)."""
    counts = reconciliation_report.counted(run_id)
    oldest_open = db.session.scalar(select(func.min(ReconciliationItem.stripe_created)).where(
        ReconciliationItem.run_id == run_id, ReconciliationItem.is_open.is_(True)))
    the_run = db.session.get(ReconciliationRun, run_id)
    for category, count in counts.items():
        setattr(the_run, f"{category}_count", count)
    the_run.cursor = min(oldest_open, the_run.until) if oldest_open else the_run.until
    the_run.status = RunStatus.DONE.value
    the_run.active_slot = None
    the_run.phase = "done"
    the_run.objects_seen = runner.done
    the_run.payouts_count = runner.payouts
    the_run.progress_done = the_run.progress_total = runner.done
    the_run.finished_at = at
    the_run.heartbeat_at = at
    db.session.commit()
    runner.progress(runner.done, runner.done)
    return the_run


def run_queued_job(now: datetime) -> int:
    """The scheduler's job: queued runs, stopping between batches when the scheduler shuts down."""
    return run_queued(now=now, should_stop=jobs.stopping)


jobs.register("finance.reconcile_queued", run_queued_job, seconds=10)
