"""Prometheus /metrics (issue #22 item 6): off (404) without a token, 401 with a wrong one; with
the token, request latencies by endpoint, the outbox backlog and failures by channel, the
scheduler's leader and each job's last run, and open reconciliation findings, each moving when
the thing it counts moves; a scrape costs the same few statements however large the tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from retreat import create_app, scheduler
from retreat.core import job_runs
from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun
from retreat.messaging import outbox
from retreat.messaging.models import OutboxMessage
from retreat.timeutil import now_utc
from retreat.web import metrics
from tests import factories
from tests.conftest import base_config
from tests.web.test_finance_query_counts import counting

TOKEN = "mT4r9QpX2vL7nK8wZ3cB6yH1jD5sF0gE"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def metrics_app():
    return create_app(base_config(METRICS_TOKEN=TOKEN))


def scrape(client) -> dict[tuple[str, frozenset], float]:
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.content_type.startswith("text/plain; version=")  # the Prometheus text format
    assert r.headers["Cache-Control"] == "no-store"
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_off_without_a_token(client):
    assert client.get("/metrics").status_code == 404  # the test app sets no METRICS_TOKEN
    assert client.get("/metrics", headers=AUTH).status_code == 404
    off = create_app(base_config(METRICS_TOKEN=TOKEN, METRICS_ENABLED=False)).test_client()
    assert off.get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token-wrong-tok", f"Basic {TOKEN}",
                                    f"Bearer {TOKEN}x", "Bearer ", f"bearer {TOKEN[:-1]}"])
def test_a_missing_or_wrong_token_is_refused(metrics_app, db, header):
    r = metrics_app.test_client().get("/metrics", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "retreat_outbox" not in r.get_data(as_text=True)


def test_every_documented_metric_is_exposed(metrics_app, db):
    client = metrics_app.test_client()
    client.get("/healthz")
    names = {name for name, _labels in scrape(client)}
    for name in metrics.METRIC_NAMES:
        if name == "retreat_http_request_duration_seconds":
            assert f"{name}_count" in names and f"{name}_bucket" in names
        elif name.startswith("retreat_scheduler_job_"):
            continue  # per job: only once a job ran (below)
        else:
            assert name in names, name


def test_request_latency_counts_by_endpoint_and_status_class(metrics_app, db):
    client = metrics_app.test_client()
    before = scrape(client)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)
    key = dict(endpoint="healthz", method="GET", status="2xx")
    assert value(after, "retreat_http_request_duration_seconds_count", **key) - \
        value(before, "retreat_http_request_duration_seconds_count", **key) == 3
    missing = dict(endpoint="none", method="GET", status="4xx")  # an unmatched path: no raw path label
    assert value(after, "retreat_http_request_duration_seconds_count", **missing) >= 1
    assert not any("no/such/page" in str(labels) for _name, labels in after)


def test_outbox_backlog_and_failures_move(metrics_app, db):
    client = metrics_app.test_client()
    before = scrape(client)
    now = now_utc()
    late = outbox.enqueue(template="test_notice", dedupe_key="metrics-late", to_email="m1@example.com",
                          due_at=now - timedelta(minutes=30), now=now)
    outbox.enqueue(template="test_notice", dedupe_key="metrics-later", to_email="m2@example.com",
                   due_at=now + timedelta(days=3), now=now)
    broken = outbox.enqueue(template="test_notice", dedupe_key="metrics-broken", to_email="m3@example.com", now=now)
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == broken.id)
                       .values(status="failed", last_error="550 no such user"))
    db.session.commit()
    after = scrape(client)
    pending = dict(status="pending", kind="email")
    assert value(after, "retreat_outbox_messages", **pending) - value(before, "retreat_outbox_messages", **pending) == 2
    assert value(after, "retreat_outbox_due_messages") - value(before, "retreat_outbox_due_messages") == 1
    assert value(after, "retreat_outbox_oldest_due_age_seconds") >= 30 * 60 - 5
    assert value(after, "retreat_outbox_failed_messages", kind="email") - \
        value(before, "retreat_outbox_failed_messages", kind="email") == 1
    for channel in ("sms", "webhook"):  # no such transport yet: computed, and zero
        assert ("retreat_outbox_failed_messages", frozenset({("kind", channel)})) in after
        assert value(after, "retreat_outbox_failed_messages", kind=channel) == 0
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == late.id)
                       .values(last_error="421 try again later", next_attempt_at=now + timedelta(minutes=5)))
    db.session.commit()
    again = scrape(client)
    assert value(again, "retreat_outbox_retrying_messages", kind="email") - \
        value(before, "retreat_outbox_retrying_messages", kind="email") == 1
    assert value(again, "retreat_outbox_due_messages") == value(before, "retreat_outbox_due_messages")


def test_scheduler_leader_and_job_runs(metrics_app, app, db):
    client = metrics_app.test_client()
    assert value(scrape(client), "retreat_scheduler_leader", holder="") == 0
    lock = scheduler.DispatchLock(app)
    try:
        assert lock.acquire()
        samples = scrape(client)
        assert value(samples, "retreat_scheduler_leader", holder=job_runs.process_name()) == 1
    finally:
        lock.release()
    assert ("retreat_scheduler_leader", frozenset({("holder", "")})) in scrape(client)
    now = now_utc()
    job_runs.record("test.metrics_job", started_at=now - timedelta(seconds=2), finished_at=now, ok=True, runner="h:1")
    job_runs.record("test.metrics_job", started_at=now, finished_at=now + timedelta(seconds=1), ok=False,
                    runner="h:1")
    db.session.commit()
    samples = scrape(client)
    job = {"job": "test.metrics_job"}
    assert value(samples, "retreat_scheduler_job_last_run_timestamp_seconds", **job) == \
        pytest.approx((now + timedelta(seconds=1)).timestamp())
    assert value(samples, "retreat_scheduler_job_last_duration_seconds", **job) == pytest.approx(1.0)
    assert value(samples, "retreat_scheduler_job_last_success", **job) == 0
    assert value(samples, "retreat_scheduler_job_failures", **job) == 1


def _run_with_findings(n_open: int, *, finished_at) -> ReconciliationRun:
    from retreat.extensions import db

    run = ReconciliationRun(status="done", finished_at=finished_at, requested_at=finished_at)
    db.session.add(run)
    db.session.flush()
    for i in range(n_open + 1):
        db.session.add(ReconciliationItem(run_id=run.id, category="missing_in_ledger" if i < n_open else "matched",
                                          kind="charge", match_key=f"charge:{run.id}-{i}",
                                          stripe_object_id=f"ch_{run.id}_{i}", is_open=i < n_open))
    db.session.commit()
    return run


def test_open_reconciliation_findings_of_the_last_run(metrics_app, db):
    client = metrics_app.test_client()
    now = now_utc()
    _run_with_findings(5, finished_at=now + timedelta(days=400))  # the latest finished run
    _run_with_findings(2, finished_at=now + timedelta(days=399))  # an older one: not counted
    samples = scrape(client)
    assert value(samples, "retreat_reconciliation_open_findings", category="missing_in_ledger") == 5
    assert value(samples, "retreat_reconciliation_open_findings", category="mismatch") == 0


def test_a_scrape_costs_a_fixed_number_of_statements(metrics_app, db):
    client = metrics_app.test_client()
    client.get("/metrics", headers=AUTH)
    with counting() as few:
        scrape(client)
    now = now_utc()
    for i in range(40):
        outbox.enqueue(template="test_notice", dedupe_key=f"metrics-n-{i}", to_email=f"n{i}@example.com", now=now)
        job_runs.record(f"test.n{i}", started_at=now, finished_at=now, ok=True, runner="h:1")
    _run_with_findings(30, finished_at=now + timedelta(days=500))
    db.session.commit()
    with counting() as many:
        scrape(client)
    assert len(many) == len(few) <= 7, many


def test_the_readme_lists_exactly_the_metrics_exposed():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Observability", 1)[1].split("\n### ", 1)[0]
    table = {m for m in re.findall(r"^\| `(retreat_\w+)` \|", section, flags=re.M)}
    assert table == set(metrics.METRIC_NAMES)
    for variable in ("LOG_LEVEL", "LOG_FORMAT", "METRICS_TOKEN", "METRICS_ENABLED", "PROMETHEUS_MULTIPROC_DIR"):
        assert f"| `{variable}` |" in readme, variable


def test_webhook_delivery_failures_are_counted_from_their_own_outbox(metrics_app, db):
    from retreat.messaging import webhook_dispatcher, webhooks

    client = metrics_app.test_client()
    before = scrape(client)
    admin = factories.user("admin", password=None)
    webhooks.create_endpoint(url="http://127.0.0.1:9/closed", events=["consultation.booked"], actor=admin)
    now = now_utc()
    webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
    db.session.commit()
    with metrics_app.app_context():
        webhook_dispatcher.deliver_due(now)  # nothing listens on port 9: a failed attempt, retried later
    after = scrape(client)
    assert value(after, "retreat_webhook_deliveries", status="pending") - \
        value(before, "retreat_webhook_deliveries", status="pending") == 1
    assert value(after, "retreat_outbox_retrying_messages", kind="webhook") - \
        value(before, "retreat_outbox_retrying_messages", kind="webhook") == 1
