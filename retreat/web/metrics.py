"""Prometheus ``/metrics`` (prometheus-client), for the operator's scraper only.

Protection: ``Authorization: Bearer <METRICS_TOKEN>``, compared in constant time. No token
configured, or ``METRICS_ENABLED=0``: 404 (metrics are off). A missing or wrong token: 401. The
route is exempt from CSRF and rate limits and reads no session (a scraper sends no cookie).

What is measured where (several gunicorn workers, one scheduler process):

- **Request latency** (``retreat_http_request_duration_seconds``, a histogram by endpoint name,
  method and status class) is kept in each process's memory. A scrape reaches one worker, so set
  ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, wiped at each start, shared by the workers) to
  have every scrape sum all workers (prometheus-client's multiprocess mode); unset, each scrape
  sees the worker that answered it.
- **Everything else** is computed from the database at scrape time, so it is the same whichever
  worker answers and needs no shared state: the outbox backlog by status and age, failed and
  retrying messages by channel (email, sms: 0 until it sends, webhook: from its own deliveries), the
  scheduler's lock holder (leader) and each job's last run (``job_runs``, written by the
  scheduler), and the open findings of the last reconciliation. A scrape costs a fixed number of
  statements, whatever the size of the tables.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime
from pathlib import Path

from flask import Flask, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select

from retreat.core import job_runs
from retreat.extensions import csrf, db, limiter
from retreat.finance.reconciliation_models import (
    ItemCategory,
    ReconciliationItem,
    ReconciliationRun,
    RunStatus,
)
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.messaging.sms_models import SmsMessage, SmsStatus
from retreat.messaging.webhook_models import DeliveryStatus, WebhookDelivery
from retreat.timeutil import now_utc
from retreat.web import access_log

METRICS_PATH = "/metrics"
CHANNELS = ("email", "sms", "webhook")  # OutboxMessage.kind: each channel appears, 0 until it sends
OPEN_FINDINGS = (ItemCategory.MISSING_IN_LEDGER, ItemCategory.MISSING_IN_STRIPE, ItemCategory.MISMATCH,
                 ItemCategory.DISPUTE)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# This process's request latencies (in PROMETHEUS_MULTIPROC_DIR files when that is set).
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_SECONDS = Histogram(
    "retreat_http_request_duration_seconds", "Time to answer a request, by endpoint (URL rule name), "
    "method and status class.", ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS,
    registry=PROCESS_REGISTRY)

METRIC_NAMES = (
    "retreat_http_request_duration_seconds",
    "retreat_outbox_messages", "retreat_outbox_due_messages", "retreat_outbox_oldest_due_age_seconds",
    "retreat_outbox_failed_messages", "retreat_outbox_retrying_messages", "retreat_webhook_deliveries",
    "retreat_scheduler_leader", "retreat_scheduler_job_last_run_timestamp_seconds",
    "retreat_scheduler_job_last_duration_seconds", "retreat_scheduler_job_last_success",
    "retreat_scheduler_job_failures", "retreat_reconciliation_open_findings",
)


def status_class(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code < 600 else "other"


def observe(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(endpoint=endpoint or "none", method=method, status=status_class(status)).observe(seconds)


# --------------------------------------------------------------------------------------------
# What the database says, at scrape time
# --------------------------------------------------------------------------------------------


def _outbox(now: datetime) -> list[GaugeMetricFamily]:
    due = OutboxMessage.next_attempt_at <= now
    rows = db.session.execute(
        select(OutboxMessage.status, OutboxMessage.kind, func.count(),
               func.count(case((due, 1))),
               func.min(case((due, OutboxMessage.due_at))),
               func.count(case((OutboxMessage.last_error.is_not(None), 1))))
        .group_by(OutboxMessage.status, OutboxMessage.kind)).all()
    by_status = GaugeMetricFamily("retreat_outbox_messages", "Outbox messages by status and channel.",
                                  labels=["status", "kind"])
    due_total = GaugeMetricFamily("retreat_outbox_due_messages",
                                  "Pending or in-flight messages whose time has come (the backlog).")
    oldest = GaugeMetricFamily("retreat_outbox_oldest_due_age_seconds",
                               "How late the oldest due, unsent message is (0: none).")
    failed = GaugeMetricFamily("retreat_outbox_failed_messages",
                               "Messages that failed for good (delivery failures), by channel.", labels=["kind"])
    retrying = GaugeMetricFamily("retreat_outbox_retrying_messages",
                                 "Pending messages whose last attempt failed (temporary delivery failures), "
                                 "by channel.", labels=["kind"])
    counts: dict[tuple[str, str], int] = {}
    failed_by, retrying_by = dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 0)
    backlog, oldest_due = 0, None
    for status, kind, n, n_due, first_due, n_errors in rows:
        kind = kind or "email"
        counts[(status, kind)] = n
        if status == OutboxStatus.FAILED.value:
            failed_by[kind] = failed_by.get(kind, 0) + n
        if status in (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value):
            backlog += n_due
            if first_due is not None and (oldest_due is None or first_due < oldest_due):
                oldest_due = first_due
        if status == OutboxStatus.PENDING.value:
            retrying_by[kind] = retrying_by.get(kind, 0) + n_errors
    # SMS: their own outbox (messaging.sms_models), the same statuses, counted as channel "sms".
    sms_rows = db.session.execute(
        select(SmsMessage.status, func.count(), func.count(case((SmsMessage.next_attempt_at <= now, 1))),
               func.min(case((SmsMessage.next_attempt_at <= now, SmsMessage.due_at))),
               func.count(case((SmsMessage.last_error.is_not(None), 1))))
        .group_by(SmsMessage.status)).all()
    for status, n, n_due, first_due, n_errors in sms_rows:
        counts[(status, "sms")] = counts.get((status, "sms"), 0) + n
        if status == SmsStatus.FAILED.value:
            failed_by["sms"] += n
        if status in (SmsStatus.PENDING.value, SmsStatus.SENDING.value):
            backlog += n_due
            if first_due is not None and (oldest_due is None or first_due < oldest_due):
                oldest_due = first_due
        if status == SmsStatus.PENDING.value:
            retrying_by["sms"] += n_errors
    for status in OutboxStatus:
        for kind in sorted(set(CHANNELS) | {k for _, k in counts}):
            by_status.add_metric([status.value, kind], counts.get((status.value, kind), 0))
    due_total.add_metric([], backlog)
    oldest.add_metric([], max((now - oldest_due).total_seconds(), 0.0) if oldest_due else 0.0)
    webhooks = GaugeMetricFamily("retreat_webhook_deliveries",
                                 "Outbound webhook deliveries by status (their own outbox).", labels=["status"])
    hook_rows = db.session.execute(
        select(WebhookDelivery.status, func.count(), func.count(case((WebhookDelivery.attempts > 0, 1))))
        .group_by(WebhookDelivery.status)).all()
    hooks = {status: n for status, n, _ in hook_rows}
    hooks_retrying = sum(tried for status, _, tried in hook_rows if status == DeliveryStatus.PENDING.value)
    for status in DeliveryStatus:
        webhooks.add_metric([status.value], hooks.get(status.value, 0))
    failed_by["webhook"] = failed_by.get("webhook", 0) + hooks.get(DeliveryStatus.FAILED.value, 0)
    retrying_by["webhook"] = retrying_by.get("webhook", 0) + hooks_retrying
    for kind, n in sorted(failed_by.items()):
        failed.add_metric([kind], n)
    for kind, n in sorted(retrying_by.items()):
        retrying.add_metric([kind], n)
    return [by_status, due_total, oldest, failed, retrying, webhooks]


def _scheduler() -> list[GaugeMetricFamily]:
    leader = GaugeMetricFamily("retreat_scheduler_leader",
                               "1 while a process holds the scheduler's lock (holder: host:pid).", labels=["holder"])
    if db.session.get_bind().dialect.name == "postgresql":
        holder = job_runs.pg_lock_holder(db.session.connection())
    else:
        holder = job_runs.file_lock_holder(Path(current_app.instance_path) / job_runs.LOCK_FILE, check=True)
    leader.add_metric([holder or ""], 1 if holder else 0)
    last_run = GaugeMetricFamily("retreat_scheduler_job_last_run_timestamp_seconds",
                                 "When each job's last run ended (Unix time).", labels=["job"])
    duration = GaugeMetricFamily("retreat_scheduler_job_last_duration_seconds",
                                 "How long each job's last run took.", labels=["job"])
    success = GaugeMetricFamily("retreat_scheduler_job_last_success",
                                "1 if each job's last run succeeded, 0 if it failed.", labels=["job"])
    failures = GaugeMetricFamily("retreat_scheduler_job_failures",
                                 "Failed runs of each job since it was first recorded.", labels=["job"])
    for run in job_runs.last_runs():
        last_run.add_metric([run.name], run.finished_at.timestamp())
        duration.add_metric([run.name], run.duration_seconds)
        success.add_metric([run.name], 1 if run.ok else 0)
        failures.add_metric([run.name], run.failures)
    return [leader, last_run, duration, success, failures]


def _reconciliation() -> list[GaugeMetricFamily]:
    last_done = (select(ReconciliationRun.id).where(ReconciliationRun.status == RunStatus.DONE.value)
                 .order_by(ReconciliationRun.finished_at.desc(), ReconciliationRun.id.desc()).limit(1)
                 .scalar_subquery())
    rows = dict(db.session.execute(
        select(ReconciliationItem.category, func.count())
        .where(ReconciliationItem.run_id == last_done, ReconciliationItem.is_open.is_(True))
        .group_by(ReconciliationItem.category)).all())
    findings = GaugeMetricFamily("retreat_reconciliation_open_findings",
                                 "Unresolved findings of the last finished Stripe reconciliation, by category.",
                                 labels=["category"])
    for category in OPEN_FINDINGS:
        findings.add_metric([category.value], rows.get(category.value, 0))
    return [findings]


class _Snapshot:
    """A collector over families computed once (the database's answers for one scrape)."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def exposition(now: datetime | None = None) -> bytes:
    """The text a scrape receives."""
    now = now or now_utc()
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Snapshot(list(PROCESS_REGISTRY.collect())))
    try:
        registry.register(_Snapshot(_outbox(now) + _scheduler() + _reconciliation()))
    finally:
        db.session.rollback()  # read only: end the transaction (and any lock wait) now
    return generate_latest(registry)


# --------------------------------------------------------------------------------------------
# The route
# --------------------------------------------------------------------------------------------


def _authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


def metrics():
    config = current_app.config
    token = str(config.get("METRICS_TOKEN") or "")
    if not config.get("METRICS_ENABLED", True) or not token:
        abort(404)
    if not _authorized(request.headers.get("Authorization", ""), token):
        return Response("Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                        mimetype="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    view = limiter.exempt(csrf.exempt(metrics))
    app.add_url_rule(METRICS_PATH, "metrics", view, methods=["GET"])

    @app.after_request
    def _observe_latency(response):
        observe(request.endpoint, request.method, response.status_code, access_log.elapsed_seconds())
        return response
