"""Outbound webhooks against a real HTTP receiver on loopback: signed deliveries, the same event id
on every retry, backoff then recovery, giving up after 24 hours (endpoint disabled, admins told),
redirects not followed, SSRF refusals, and a dispatcher process killed mid-delivery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from retreat.extensions import db
from retreat.messaging import webhook_dispatcher, webhooks
from retreat.messaging.webhook_models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from retreat.models import AuditEvent, OutboxMessage
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import base_config, is_postgres
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _endpoint(url, events=("consultation.booked",), admin=None):
    admin = admin or factories.user("admin", password=None)
    ep, secret = webhooks.create_endpoint(url=url, events=list(events), description="CRM", actor=admin)
    db.session.flush()
    return ep, secret


def _fake_resolve(address):
    return lambda host, port, type=None: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


# -- registration ------------------------------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("", "Enter the URL"),
    ("ftp://example.com/x", "must start with https://"),
    ("javascript:alert(1)", "must start with https://"),
    ("https://user:pw@example.com/", "no user name or password"),
    ("https:///nohost", "needs a host name"),
    ("https://example.com:99999/", "not a valid URL"),
    ("https://" + "a" * 600 + ".com/", "under 500 characters"),
])
def test_bad_urls_are_refused_with_the_reason(db, url, message):
    admin = factories.user("admin", password=None)
    with pytest.raises(webhooks.WebhookError) as exc:
        webhooks.create_endpoint(url=url, events=["consultation.booked"], actor=admin)
    assert message in exc.value.errors["url"][0]
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.5", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "::ffff:127.0.0.1"])
def test_private_and_loopback_addresses_are_refused_unless_allowed(address):
    with pytest.raises(webhooks.WebhookError) as exc:
        webhooks.check_url("https://hooks.example.com/x", private_ok=False, resolve=_fake_resolve(address))
    assert "private or local network" in exc.value.message
    assert webhooks.check_url("https://hooks.example.com/x", private_ok=True, resolve=_fake_resolve(address))


def test_public_address_is_accepted_and_pinned():
    t = webhooks.check_url("https://hooks.example.com:8443/in?x=1", private_ok=False,
                           resolve=_fake_resolve("93.184.216.34"))
    assert (t.host, t.port, t.path, t.address) == ("hooks.example.com", 8443, "/in?x=1", "93.184.216.34")


def test_unknown_or_no_events_and_a_long_description_are_refused(db, receiver):
    admin = factories.user("admin", password=None)
    for events, field, message in [([], "events", "at least one"), (["consultation.booked", "intake.read"], "events",
                                   "Unknown event type 'intake.read'"), ("consultation.booked", "events", "at least one")]:
        with pytest.raises(webhooks.WebhookError) as exc:
            webhooks.create_endpoint(url=receiver.url, events=events, actor=admin)
        assert message in exc.value.errors[field][0]
    with pytest.raises(webhooks.WebhookError) as exc:
        webhooks.create_endpoint(url=receiver.url, events=["payment.succeeded"], description="x" * 201, actor=admin)
    assert "description" in exc.value.errors
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_secret_is_shown_once_and_stored_encrypted(db, receiver):
    ep, secret = _endpoint(receiver.url)
    assert secret.startswith("whsec_") and secret not in ep.secret_encrypted
    assert webhooks.secret_of(ep) == secret
    assert "webhook_endpoint.created" in db.session.scalars(select(AuditEvent.action)).all()


# -- emitting ------------------------------------------------------------------------------------

def test_emit_queues_one_delivery_per_subscribed_enabled_endpoint(db, receiver):
    a, _ = _endpoint(receiver.url, events=["consultation.booked", "payment.succeeded"])
    b, _ = _endpoint(receiver.url + "/b", events=["payment.succeeded"])
    off, _ = _endpoint(receiver.url + "/off", events=["consultation.booked"])
    webhooks.disable_endpoint(off.id, reason="test")
    ev = webhooks.emit("consultation.booked", {"consultation_id": 7, "guest_email": "g@example.com"})
    assert {d.endpoint_id for d in db.session.scalars(select(WebhookDelivery))} == {a.id}
    assert ev.public_id.startswith("evt_")
    assert webhooks.emit("refund.succeeded", {"refund_id": 1}) is None  # nobody subscribed: nothing written
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    with pytest.raises(ValueError):
        webhooks.emit("intake.submitted", {})
    with pytest.raises(ValueError, match="clinical"):
        webhooks.emit("payment.succeeded", {"enrollment": {"id": 1, "diagnosis": "x"}})


# -- delivering ----------------------------------------------------------------------------------

def test_delivery_is_signed_and_has_the_documented_shape(db, receiver):
    ep, secret = _endpoint(receiver.url)
    now = now_utc()
    ev = webhooks.emit("consultation.booked", {"consultation_id": 7, "start": "2026-12-10T16:00:00Z"}, now=now)
    result = webhook_dispatcher.deliver_due(now)
    assert result.delivered == 1 and len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/hooks/retreat"
    assert got.json == {"id": ev.public_id, "type": "consultation.booked", "created": int(now.timestamp()),
                        "data": {"consultation_id": 7, "start": "2026-12-10T16:00:00Z"}}
    header = got.headers["Retreat-Signature"]
    assert webhooks.verify(secret, header, got.body, now=int(now.timestamp()))
    assert not webhooks.verify("whsec_wrong", header, got.body, now=int(now.timestamp()))
    assert not webhooks.verify(secret, header, got.body + b" ", now=int(now.timestamp()))
    assert not webhooks.verify(secret, header, got.body, now=int(now.timestamp()) + 3600)  # replayed an hour later
    d = db.session.scalar(select(WebhookDelivery))
    db.session.refresh(d)
    assert (d.status, d.last_status_code, d.attempts) == ("delivered", 200, 1)
    assert webhook_dispatcher.deliver_due(now + timedelta(hours=1)).claimed == 0  # never twice


def test_a_failing_receiver_is_retried_with_backoff_and_the_same_event_id_until_it_recovers(db, receiver):
    ep, secret = _endpoint(receiver.url)
    now = now_utc()
    webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
    receiver.fail_next = 2
    assert webhook_dispatcher.deliver_due(now).retried == 1
    d = db.session.scalar(select(WebhookDelivery))
    db.session.refresh(d)
    assert d.status == "pending" and d.next_attempt_at == now + timedelta(seconds=60) and d.last_status_code == 500
    assert webhook_dispatcher.deliver_due(now + timedelta(seconds=30)).claimed == 0  # not due yet
    assert webhook_dispatcher.deliver_due(now + timedelta(seconds=61)).retried == 1
    db.session.refresh(d)
    assert d.next_attempt_at == now + timedelta(seconds=61 + 300)
    assert webhook_dispatcher.deliver_due(now + timedelta(seconds=400)).delivered == 1
    assert len(receiver.received) == 3
    assert len({r.json["id"] for r in receiver.received}) == 1 and len({r.body for r in receiver.received}) == 1
    assert [a.status_code for a in webhooks.attempts(d.id)] == [500, 500, 200]
    db.session.refresh(ep)
    assert ep.consecutive_failures == 0 and ep.enabled


def test_after_24_hours_of_failures_the_endpoint_is_disabled_and_admins_are_emailed(db, receiver):
    admin = factories.user("admin", email="ada@example.com", password=None)
    ep, _ = _endpoint(receiver.url, admin=admin)
    now = now_utc()
    webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
    receiver.fail_next = 10_000
    at, rounds = now, 0
    while rounds < 40:
        webhook_dispatcher.deliver_due(at)
        d = db.session.scalar(select(WebhookDelivery))
        db.session.refresh(d)
        if d.status != "pending":
            break
        at = d.next_attempt_at
        rounds += 1
    assert d.status == "failed" and at - now <= timedelta(hours=24)
    assert 8 <= d.attempts <= 20, d.attempts
    db.session.refresh(ep)
    assert not ep.enabled and "24 hours" in ep.disabled_reason
    mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "webhook_disabled")).all()
    assert [m.recipient_email for m in mail] == ["ada@example.com"]
    assert mail[0].context["endpoint_url"] == receiver.url
    # a disabled endpoint gets nothing new, and redelivery asks to turn it on first
    assert webhooks.emit("consultation.booked", {"consultation_id": 2}) is None
    with pytest.raises(webhooks.WebhookError, match="back on"):
        webhooks.redeliver(d.id, actor=admin)
    webhooks.enable_endpoint(ep.id, actor=admin)
    receiver.fail_next = 0
    webhooks.redeliver(d.id, actor=admin)
    webhooks.redeliver(d.id, actor=admin)  # twice: still one delivery
    before = len(receiver.received)
    assert webhook_dispatcher.deliver_due(now_utc()).delivered == 1
    assert len(receiver.received) == before + 1 and receiver.received[-1].json["id"] == receiver.received[0].json["id"]


def test_redirects_are_not_followed(db, receiver):
    _endpoint(receiver.url)
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    now = now_utc()
    webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
    webhook_dispatcher.deliver_due(now)
    d = db.session.scalar(select(WebhookDelivery))
    db.session.refresh(d)
    assert d.status == "pending" and d.last_status_code == 302 and "not followed" in d.last_error
    assert len(receiver.received) == 1


def test_a_receiver_that_hangs_times_out_and_is_retried(app, db, receiver):
    _endpoint(receiver.url)
    receiver.stall_seconds = 3
    app.config["WEBHOOK_TIMEOUT_SECONDS"] = 1
    try:
        now = now_utc()
        webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
        webhook_dispatcher.deliver_due(now)
    finally:
        app.config["WEBHOOK_TIMEOUT_SECONDS"] = 5
    d = db.session.scalar(select(WebhookDelivery))
    db.session.refresh(d)
    assert d.status == "pending" and "timed out" in d.last_error.lower()


def test_an_address_that_became_private_is_refused_at_delivery(app, db, receiver):
    _endpoint(receiver.url)
    app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = False
    try:
        now = now_utc()
        webhooks.emit("consultation.booked", {"consultation_id": 1}, now=now)
        webhook_dispatcher.deliver_due(now)
    finally:
        app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = True
    d = db.session.scalar(select(WebhookDelivery))
    db.session.refresh(d)
    assert d.status == "pending" and "private" in d.last_error and receiver.received == []


def test_send_a_test_event(db, receiver):
    ep, secret = _endpoint(receiver.url, events=["payment.succeeded"])
    admin = factories.user("admin", password=None)
    webhooks.send_test(ep.id, actor=admin)
    webhook_dispatcher.deliver_due(now_utc())
    assert receiver.received[0].json["type"] == "webhook.test"


def test_deleting_an_endpoint_drops_its_pending_deliveries(db, receiver):
    ep, _ = _endpoint(receiver.url)
    admin = factories.user("admin", password=None)
    webhooks.emit("consultation.booked", {"consultation_id": 1})
    webhooks.delete_endpoint(ep.id, actor=admin)
    assert webhook_dispatcher.deliver_due(now_utc()).delivered == 0 and receiver.received == []
    assert db.session.scalar(select(WebhookDelivery.status)) == "failed"
    assert webhooks.live_endpoints() == []


# -- a dispatcher killed mid-delivery ---------------------------------------------------------------

def _env(**extra) -> dict:
    cfg = base_config()
    env = {**os.environ, "DATABASE_URL": cfg["SQLALCHEMY_DATABASE_URI"], "RETREAT_INSTANCE_DIR": cfg["INSTANCE_DIR"],
           "SECRET_KEY": cfg["SECRET_KEY"], "CLINICAL_DATA_KEYS": cfg["CLINICAL_DATA_KEYS"],
           "BASE_URL": cfg["BASE_URL"], "RETREAT_ENV": "testing", "PYTHONUNBUFFERED": "1",
           "WEBHOOK_ALLOW_PRIVATE_URLS": "1"}
    env.update(extra)
    return env


@pytest.mark.skipif(not is_postgres(), reason="a second process shares the database: PostgreSQL")
def test_dispatcher_killed_mid_delivery_loses_nothing_and_a_duplicate_has_the_same_event_id(committing_app):
    receiver = Receiver(stall_seconds=0.2).start()
    n = 12
    try:
        with committing_app.app_context():
            admin = factories.user("admin", password=None)
            webhooks.create_endpoint(url=receiver.url, events=["payment.succeeded"], actor=admin)
            past = now_utc() - timedelta(minutes=1)
            for i in range(n):
                webhooks.emit("payment.succeeded", {"payment_id": i}, now=past)
            db.session.commit()
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "messages", "deliver-webhooks",
                                 "--batch-size", "6"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while len(receiver.received) < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            assert len(receiver.received) >= 3, proc.stdout.read1(4000) if proc.poll() is not None else "slow"
            proc.send_signal(signal.SIGKILL)  # mid-delivery: the receiver is still answering one
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        receiver.stall_seconds = 0
        with committing_app.app_context():
            rows = list(db.session.scalars(select(WebhookDelivery)))
            leased = [d for d in rows if d.status == "sending"]
            delivered_before = {d.id for d in rows if d.status == "delivered"}
            assert leased, "the kill should land mid-batch"
            # before the lease ends nobody touches the killed dispatcher's rows; after it, all go out
            webhook_dispatcher.deliver_due(now_utc())
            after_lease = max(d.lease_until for d in leased) + timedelta(seconds=1)
            webhook_dispatcher.deliver_due(after_lease)
            db.session.remove()
            statuses = Counter(db.session.scalars(select(WebhookDelivery.status)))
            attempts = db.session.scalar(select(func.count()).select_from(WebhookAttempt))
            db.session.remove()
        assert statuses == Counter({"delivered": n})
        ids = Counter(r.json["id"] for r in receiver.received)
        assert len(ids) == n  # every event arrived
        duplicates = {k: c for k, c in ids.items() if c > 1}
        # only what the killed process had claimed and not recorded can arrive twice, same id
        assert sum(ids.values()) == n + sum(c - 1 for c in duplicates.values())
        assert len(duplicates) <= len(leased) and delivered_before is not None and attempts >= n
        assert all(json.loads(r.body)["type"] == "payment.succeeded" for r in receiver.received)
    finally:
        receiver.stop()
