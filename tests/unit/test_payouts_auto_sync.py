"""Payout webhooks lead to an automatic payout sync: a signed ``payout.*`` event records a request in
the commit that records the event (a duplicate records nothing); the scheduler job
``finance.payouts_requested`` syncs only when a request is pending and marks it done only after the
sync succeeded; a request that arrives during a sync, or a sync that cannot reach Stripe, leaves the
request pending for the next run. Real webhook route, scheduler job and Stripe proxy."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from retreat import scheduler
from retreat.core.cache_versions import counters
from retreat.extensions import db as _db
from retreat.finance import payouts
from retreat.finance.payout_models import Payout
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests import payments_helpers as ph
from tests import payout_helpers as poh

JOB = "finance.payouts_requested"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there


def _job():
    return scheduler.registered_jobs()[JOB]


def _counts() -> tuple[int, int]:
    c = counters(payouts.REQUESTED, payouts.SYNCED)
    return c[payouts.REQUESTED], c[payouts.SYNCED]


def _payout(stripe_id):
    return _db.session.scalar(select(Payout).where(Payout.stripe_payout_id == stripe_id))


def _automatic_syncs() -> int:
    return _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "finance.payouts_synced", AuditEvent.actor_id.is_(None)))


def test_the_job_is_registered_every_minute():
    job = _job()
    assert job.seconds == 60 and job.func is payouts.sync_requested


def test_a_payout_webhook_records_one_request_and_a_duplicate_adds_none(db, client):
    assert _counts() == (0, 0) and not payouts.sync_pending()
    po = {"id": "po_test_webhook", "object": "payout", "status": "paid"}
    r = ph.deliver(client, "payout.paid", po, event_id="evt_payout_paid_1")
    assert r.status_code == 200 and r.json["outcome"] == "payout sync requested"
    assert _counts() == (1, 0) and payouts.sync_pending()
    r = ph.deliver(client, "payout.paid", po, event_id="evt_payout_paid_1")  # Stripe retries the delivery
    assert r.status_code == 200 and r.json["outcome"] == "duplicate"
    assert _counts() == (1, 0)
    ph.deliver(client, "payout.updated", po, event_id="evt_payout_updated_1")  # another payout event
    assert _counts() == (2, 0)
    ph.deliver(client, "customer.created", {"id": "cus_1"})  # not a payout event
    assert _counts() == (2, 0)


def test_the_job_syncs_the_payout_and_its_lines_then_rests(db, client, proxy_app, stripe_proxy):
    sc = poh.paid_refunded_disputed(client, stripe_proxy)
    po = stripe_proxy.create_payout(sc.txns)
    assert ph.deliver(client, "payout.paid", po).json["outcome"] == "payout sync requested"
    report = _job().func(now_utc())
    _db.session.commit()  # what run_job does after the job
    assert report is not None and report.payouts_new >= 1 and po["id"] not in dict(report.flagged)
    payout = _payout(po["id"])
    assert payout is not None and payout.status == "paid"
    assert sorted(ln.balance_transaction_id for ln in payout.lines) == sorted(sc.txns)
    assert payouts.difference(payout, payouts.totals([payout.id])[payout.id]) == 0
    assert _counts() == (1, 1) and not payouts.sync_pending()
    assert _automatic_syncs() == 1 and payouts.last_automatic_sync() is not None
    lists = stripe_proxy.payout_lists
    assert _job().func(now_utc()) is None  # nothing pending: Stripe is not called
    assert stripe_proxy.payout_lists == lists and _automatic_syncs() == 1


def test_the_job_with_no_pending_request_does_not_call_stripe(db, app):
    old = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = UNREACHABLE  # any call to Stripe would fail the job
    try:
        assert _job().func(now_utc()) is None
    finally:
        app.config["STRIPE_API_BASE"] = old
    assert _counts() == (0, 0) and _automatic_syncs() == 0


def test_the_finance_page_says_when_payouts_were_last_fetched_automatically(db, client, proxy_app, stripe_proxy,
                                                                           make_client):
    finance = make_client("finance")
    page = finance.get("/finance/payouts").get_data(as_text=True)
    assert "Not fetched automatically yet." in page and "A fetch is pending." not in page
    ph.deliver(client, "payout.paid", {"id": "po_test_page", "object": "payout"})
    assert "A fetch is pending." in finance.get("/finance/payouts").get_data(as_text=True)
    _job().func(now_utc())
    _db.session.commit()
    page = finance.get("/finance/payouts").get_data(as_text=True)
    assert "Last fetched automatically:" in page and "A fetch is pending." not in page


@pytest.fixture()
def proxied(committing_app, stripe_proxy):
    app = committing_app
    app.config["STRIPE_API_BASE"] = stripe_proxy.url
    yield app
    stripe_proxy.on_payout_list = None


def _deliver(app, event_type: str, obj: dict, event_id: str | None = None):
    with app.app_context():
        return ph.deliver(app.test_client(), event_type, obj, event_id)


def _state(app, stripe_id: str | None = None):
    with app.app_context():
        try:
            return _counts(), (_payout(stripe_id) is not None if stripe_id else None)
        finally:
            _db.session.remove()


def test_a_request_arriving_during_a_sync_stays_pending(proxied, stripe_proxy):
    app = proxied
    with app.app_context():
        sc = poh.paid_refunded_disputed(app.test_client(), stripe_proxy, refund=0, dispute=False)
        _db.session.commit()
    first = stripe_proxy.create_payout(sc.txns[:1])
    assert _deliver(app, "payout.paid", first).json["outcome"] == "payout sync requested"
    second = stripe_proxy.create_payout(sc.txns[1:], status="in_transit")
    during = []

    def webhook_while_stripe_is_read():  # runs while the job waits for Stripe's answer
        if not during:
            during.append(_deliver(app, "payout.created", second).json["outcome"])

    stripe_proxy.on_payout_list = webhook_while_stripe_is_read
    assert scheduler.run_job(app, _job()) is True
    assert during == ["payout sync requested"]
    (requested, synced), found = _state(app, first["id"])
    assert found and (requested, synced) == (2, 1)  # the request made during the sync is still pending
    stripe_proxy.on_payout_list = None
    assert scheduler.run_job(app, _job()) is True
    assert _state(app, second["id"]) == ((2, 2), True)


def test_stripe_unreachable_fails_the_job_and_leaves_the_request_pending(proxied, stripe_proxy, caplog,
                                                                         monkeypatch):
    app = proxied
    monkeypatch.setattr(scheduler.log, "disabled", False)  # alembic's fileConfig disables loggers
    with app.app_context():
        sc = poh.paid_refunded_disputed(app.test_client(), stripe_proxy, refund=0, dispute=False)
        _db.session.commit()
    po = stripe_proxy.create_payout(sc.txns)
    _deliver(app, "payout.paid", po)
    app.config["STRIPE_API_BASE"] = UNREACHABLE
    with caplog.at_level(logging.ERROR, logger="retreat.scheduler"):
        assert scheduler.run_job(app, _job()) is False
    assert f"scheduled job {JOB} failed" in caplog.text
    assert _state(app, po["id"]) == ((1, 0), False)
    app.config["STRIPE_API_BASE"] = stripe_proxy.url  # Stripe is back: the next run does it
    assert scheduler.run_job(app, _job()) is True
    assert _state(app, po["id"]) == ((1, 1), True)
