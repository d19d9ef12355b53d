"""Stripe reconciliation pages: queue a run (done in the background by the scheduler), watch its
progress, read its report by category, repair a missed webhook in one click, compare two runs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms.validators import Optional

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import IsoDateField, viewer_tz
from retreat.core.errors import DomainError, NotFound
from retreat.extensions import db
from retreat.finance import reconciliation_queue as queued_runs
from retreat.finance import reconciliation_repair as repairs
from retreat.finance import reconciliation_report as report
from retreat.finance.reconciliation_models import ReconciliationItem, RunStatus
from retreat.timeutil import now_utc
from retreat.timeutil import zone as tz_zone
from retreat.web.forms import refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


class RunForm(FlaskForm):
    since = IsoDateField("From", format="%Y-%m-%d", validators=[Optional()])
    until = IsoDateField("To", format="%Y-%m-%d", validators=[Optional()])


def _window(form: RunForm) -> tuple[datetime | None, datetime | None]:
    """The form's local days as UTC instants: from the start of ``since`` to the end of ``until``."""
    zone = tz_zone(viewer_tz())
    since = until = None
    if form.since.data:
        since = datetime.combine(form.since.data, time(0), zone).astimezone(UTC)
    if form.until.data:
        until = (datetime.combine(form.until.data + timedelta(days=1), time(0), zone) - timedelta(microseconds=1)
                 ).astimezone(UTC)
    return since, until


def _int_arg(name: str, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        abort(400, description=f"'{name}' must be a run number, not {raw[:20]!r}.")
    return int(raw)


def _index(form: RunForm, status: int = 200):
    page = report.runs(page=_int_arg("page", 1) or 1)
    return render_template("finance/reconciliation.html", form=form, page=page, active=queued_runs.active_run(),
                           next_since=queued_runs.default_since(), labels=report.CATEGORY_LABELS,
                           short=report.CATEGORY_SHORT,
                           order=report.CATEGORY_ORDER), status


@bp.get("/reconciliation")
@no_store
def reconciliation_index():
    return _index(RunForm(formdata=None))


@bp.post("/reconciliation/runs")
def reconciliation_queue():
    form = RunForm()
    if not form.validate_on_submit():
        return _index(form, 422)
    since, until = _window(form)
    try:
        run, created = queued_runs.queue(since=since, until=until, now=now_utc(), actor=acting_user(),
                                         ctx=request_context())
    except DomainError as exc:
        getattr(form, exc.field or "since").errors = [exc.message]
        return _index(form, exc.status)
    if created:
        flash(f"Reconciliation run #{run.id} is queued; it starts within seconds.", "success")
    else:
        flash(f"Run #{run.id} is already {run.status}: no second run was queued.", "info")
    return redirect(url_for("finance.reconciliation_run", run_id=run.id))


def _run_page(run_id: int, status: int = 200, category: str | None = None):
    run = report.get_run(run_id)
    counts = report.counts(run)
    category = category or request.args.get("category") or next(
        (c for c in report.CATEGORY_ORDER if counts[c]), report.CATEGORY_ORDER[0])
    if category not in report.CATEGORY_ORDER:
        abort(400, description="Choose a category from the list.")
    items = report.items(run.id, category, page=_int_arg("page", 1) or 1)
    return render_template("finance/reconciliation_run.html", run=run, counts=counts, category=category,
                           items=items, labels=report.CATEGORY_LABELS, order=report.CATEGORY_ORDER,
                           form=FlaskForm(), active=run.status in (RunStatus.QUEUED, RunStatus.RUNNING)), status


@bp.get("/reconciliation/runs/<int:run_id>")
@no_store
def reconciliation_run(run_id: int):
    return _run_page(run_id)


@bp.get("/reconciliation/runs/<int:run_id>/progress.json")
@no_store
def reconciliation_progress(run_id: int):
    run = report.get_run(run_id)
    return jsonify({"id": run.id, "status": run.status, "phase": run.phase, "done": run.progress_done,
                    "total": run.progress_total, "error": run.error,
                    "counts": report.counts(run) if run.status == RunStatus.DONE else None})


@bp.post("/reconciliation/items/<int:item_id>/repair")
def reconciliation_repair(item_id: int):
    item = db.session.get(ReconciliationItem, item_id)
    if item is None:
        raise NotFound("There is no such reconciliation item.")
    run_id, category = item.run_id, item.category
    if not FlaskForm().validate_on_submit():
        abort(400, description="Your form expired. Reload the page and try again.")
    try:
        item = repairs.repair(item_id, now=now_utc(), actor=acting_user(), ctx=request_context())
    except DomainError as exc:
        refused(exc.message, "error")
        return _run_page(run_id, exc.status, category)
    flash(f"Repaired: {item.stripe_object_id} was applied through the webhook and is now in the ledger.", "success")
    return redirect(url_for("finance.reconciliation_run", run_id=run_id, category=category))


@bp.get("/reconciliation/compare")
@no_store
def reconciliation_compare():
    a, b = _int_arg("a"), _int_arg("b")
    if a is None or b is None:
        abort(400, description="Choose two runs to compare.")
    diff = report.compare(a, b)
    return render_template("finance/reconciliation_compare.html", diff=diff, labels=report.CATEGORY_LABELS)
