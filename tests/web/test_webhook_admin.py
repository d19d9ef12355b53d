"""Admins manage webhook endpoints in the console and through the API; a real receiver on loopback
gets the test event and a redelivery. Everyone else is refused (the role matrix covers every route)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retreat.accounts import api_tokens
from retreat.extensions import db as _db
from retreat.messaging import webhook_dispatcher, webhooks
from retreat.messaging.webhook_models import WebhookDelivery, WebhookEndpoint
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting
from tests.webhook_receiver import Receiver


@pytest.fixture()
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture()
def admin(db):
    return factories.user("admin", name="Ada Admin", password=None)


def _count() -> int:
    return _db.session.scalar(select(func.count()).select_from(WebhookEndpoint))


def test_add_endpoint_shows_the_secret_once_then_test_and_redeliver(app, admin, receiver):
    c = signed_in(app, admin)
    assert "No endpoints yet" in c.get("/admin/webhooks").get_data(as_text=True)
    r = c.post("/admin/webhooks/new", data={"url": receiver.url, "description": "CRM",
                                            "events": ["consultation.booked", "payment.succeeded"]})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "shown only once" in html and r.headers["Cache-Control"].startswith("no-store")
    ep = _db.session.scalar(select(WebhookEndpoint))
    secret = webhooks.secret_of(ep)
    assert secret in html
    detail = c.get(f"/admin/webhooks/{ep.id}").get_data(as_text=True)
    assert secret not in detail and "consultation.booked, payment.succeeded" in detail
    assert c.post(f"/admin/webhooks/{ep.id}/test").status_code == 302
    webhook_dispatcher.deliver_due(now_utc())
    (got,) = receiver.received
    assert got.json["type"] == "webhook.test"
    assert webhooks.verify(secret, got.headers["Retreat-Signature"], got.body, now=int(now_utc().timestamp()))
    detail = c.get(f"/admin/webhooks/{ep.id}").get_data(as_text=True)
    assert "delivered" in detail and got.json["id"] in detail
    d = _db.session.scalar(select(WebhookDelivery))
    page = c.get(f"/admin/webhooks/{ep.id}/deliveries/{d.id}").get_data(as_text=True)
    assert "HTTP 200" in page and got.json["id"] in page
    for _ in range(2):  # twice: queued once
        assert c.post(f"/admin/webhooks/{ep.id}/deliveries/{d.id}/redeliver").status_code == 302
    webhook_dispatcher.deliver_due(now_utc())
    assert [r.json["id"] for r in receiver.received] == [got.json["id"]] * 2


@pytest.mark.parametrize("data, field, message", [
    ({"url": "", "events": ["consultation.booked"]}, "url", "required"),
    ({"url": "ftp://example.com/x", "events": ["consultation.booked"]}, "url", "must start with https://"),
    ({"url": "https://u:p@example.com/", "events": ["consultation.booked"]}, "url", "no user name"),
    ({"url": "https://nowhere.invalid/x", "events": ["consultation.booked"]}, "url", "could not be found"),
    ({"url": "http://127.0.0.1:9/x", "events": []}, "events", "at least one"),
    ({"url": "http://127.0.0.1:9/x", "events": ["intake.read"]}, "events", "Unknown event type"),
    ({"url": "http://127.0.0.1:9/x" + "a" * 600, "events": ["consultation.booked"]}, "url", "500"),
    ({"url": "http://127.0.0.1:9/x", "events": ["consultation.booked"], "description": "d" * 201}, "description", "200"),
])
def test_bad_endpoint_forms_are_refused_next_to_the_field_and_nothing_is_saved(app, admin, data, field, message):
    c = signed_in(app, admin)
    r = c.post("/admin/webhooks/new", data=data)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and message in html, html[-2000:]
    assert f'id="{field}-error"' in html
    assert _count() == 0


def test_private_addresses_are_refused_when_not_allowed(app, admin):
    app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = False
    try:
        r = signed_in(app, admin).post("/admin/webhooks/new", data={"url": "http://127.0.0.1:8080/hook",
                                                                    "events": ["consultation.booked"]})
    finally:
        app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = True
    assert r.status_code == 422 and "private or local network" in r.get_data(as_text=True) and _count() == 0


def test_turn_off_on_and_delete(app, admin, receiver):
    ep, _ = webhooks.create_endpoint(url=receiver.url, events=["consultation.booked"], actor=admin)
    c = signed_in(app, admin)
    c.post(f"/admin/webhooks/{ep.id}/enabled", data={"value": "0"})
    _db.session.refresh(ep)
    assert not ep.enabled and "Turn on" in c.get(f"/admin/webhooks/{ep.id}").get_data(as_text=True)
    c.post(f"/admin/webhooks/{ep.id}/enabled", data={"value": "1"})
    _db.session.refresh(ep)
    assert ep.enabled
    assert c.post(f"/admin/webhooks/{ep.id}/delete").status_code == 302
    assert c.get(f"/admin/webhooks/{ep.id}").status_code == 404
    assert "No endpoints yet" in c.get("/admin/webhooks").get_data(as_text=True)


def test_webhook_pages_statement_counts(app, admin, receiver):
    ep, _ = webhooks.create_endpoint(url=receiver.url, events=["consultation.booked"], actor=admin)
    for i in range(10):
        webhooks.emit("consultation.booked", {"consultation_id": i})
    c = signed_in(app, admin)
    c.get("/admin/webhooks")
    for path, most in (("/admin/webhooks", 6), (f"/admin/webhooks/{ep.id}", 7)):
        with counting() as statements:
            assert c.get(path).status_code == 200
        assert len(statements) <= most, (path, statements)


# -- the API -------------------------------------------------------------------------------------

def _token(user) -> dict:
    return {"Authorization": f"Bearer {api_tokens.create_token(user, name='hooks')[1]}"}


def test_api_create_list_test_delete(app, admin, receiver, client):
    h = _token(admin)
    r = client.post("/api/v1/webhook-endpoints", headers=h,
                    json={"url": receiver.url, "events": ["consultation.booked"], "description": "Zapier"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) >= {"id", "url", "events", "secret"} and body["secret"].startswith("whsec_")
    listed = client.get("/api/v1/webhook-endpoints", headers=h).get_json()["items"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    t = client.post(f"/api/v1/webhook-endpoints/{body['id']}/test", headers=h)
    assert t.status_code == 202 and t.get_json()["event_id"].startswith("evt_")
    webhook_dispatcher.deliver_due(now_utc())
    assert receiver.received[0].json["id"] == t.get_json()["event_id"]
    assert client.delete(f"/api/v1/webhook-endpoints/{body['id']}", headers=h).status_code == 204
    assert client.delete(f"/api/v1/webhook-endpoints/{body['id']}", headers=h).status_code == 404
    assert client.get("/api/v1/webhook-endpoints", headers=h).get_json()["items"] == []


@pytest.mark.parametrize("payload, field", [
    ({"url": "ftp://x.example/", "events": ["consultation.booked"]}, "url"),
    ({"url": "http://127.0.0.1:9/x", "events": ["nope"]}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
    ({"events": ["consultation.booked"]}, "url"),
])
def test_api_bad_input_is_a_4xx_with_field_errors(app, admin, client, payload, field):
    r = client.post("/api/v1/webhook-endpoints", headers=_token(admin), json=payload)
    assert r.status_code == 422 and field in str(r.get_json()["errors"]), r.get_json()
    assert _count() == 0


def test_api_refuses_other_roles_and_revoked_tokens(app, db, client):
    fac = factories.user("facilitator", password=None)
    assert client.get("/api/v1/webhook-endpoints", headers=_token(fac)).status_code == 403
    admin = factories.user("admin", password=None)
    token, raw = api_tokens.create_token(admin, name="old")
    api_tokens.revoke_token(token, actor=admin)
    assert client.get("/api/v1/webhook-endpoints", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
