"""Validly signed but malformed Stripe events are a 400, recorded, never a 500 (issue #16, item 11).

Stripe retries a 5xx for days; a body that can never be processed must be answered 400 once, and
left in the audit log (``stripe.event_refused``) for finance and admins to see. Signatures with a
timestamp too old or too far in the future are refused too (and not recorded: not from Stripe).
"""

from __future__ import annotations

import json
import time

import pytest
from flask import current_app
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.finance.stripe_events import REFUSED_ACTION
from retreat.payments import gateway
from retreat.payments.models import StripeEvent


def _post(client, payload: bytes, timestamp: int | None = None):
    sig = gateway.signature_header(payload, current_app.config["STRIPE_WEBHOOK_SECRET"], timestamp)
    return client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": sig,
                                                                  "Content-Type": "application/json"})


def _event(**changes) -> dict:
    ev = {"id": "evt_malformed_1", "object": "event", "type": "payment_intent.succeeded",
          "created": int(time.time()), "data": {"object": {"id": "pi_123", "object": "payment_intent"}}}
    ev.update(changes)
    return ev


def _refused(db) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == REFUSED_ACTION)))


def _stripe_events(db) -> int:
    return db.session.scalar(select(func.count()).select_from(StripeEvent))


MALFORMED = {
    "array body": b"[1, 2, 3]",
    "string body": b'"evt_123"',
    "number body": b"42",
    "null body": b"null",
    "not json": b"{not json",
    "data as a string": json.dumps(_event(data="oops")).encode(),
    "data.object as a list": json.dumps(_event(data={"object": [1]})).encode(),
    "payment_intent event without an object id": json.dumps(_event(data={"object": {"object": "payment_intent"}})).encode(),
    "refund event without an object id": json.dumps(_event(type="refund.updated", data={"object": {}})).encode(),
    "object id not a string": json.dumps(_event(data={"object": {"id": 12}})).encode(),
    "event id over 80 characters": json.dumps(_event(id="evt_" + "x" * 90)).encode(),
    "NUL in the event id": json.dumps(_event(id="evt_\u0000abc")).encode(),
    "NUL in the object id": json.dumps(_event(data={"object": {"id": "pi_\u0000"}})).encode(),
    "NUL in the type": json.dumps(_event(type="payment_intent.\u0000")).encode(),
    "NUL in charge.refunded payment_intent": json.dumps(_event(type="charge.refunded", data={"object": {
        "id": "ch_1", "payment_intent": "pi_\u0000"}})).encode(),
    "event id not a string": json.dumps(_event(id=["evt"])).encode(),
    "no type": json.dumps({"id": "evt_x", "data": {"object": {}}}).encode(),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_signed_malformed_events_are_400_and_recorded(app, db, client, name):
    before = _stripe_events(db)
    r = _post(client, MALFORMED[name])
    assert r.status_code == 400, (name, r.status_code)
    assert r.is_json and r.get_json()["error"]
    db.session.expire_all()
    refused = _refused(db)
    assert len(refused) == 1 and refused[0].details["reason"] == r.get_json()["error"]
    assert _stripe_events(db) == before


def test_a_readable_id_of_a_refused_event_is_recorded(app, db, client):
    _post(client, json.dumps(_event(id="evt_readable", data="oops")).encode())
    assert [e.object_id for e in _refused(db)] == ["evt_readable"]


def test_non_utf8_signed_body_is_refused_not_a_server_error(app, db, client):
    assert _post(client, b"\xff\xfe{}").status_code == 400


@pytest.mark.parametrize("offset", [-3600, -301, 301, 3600, 10**9])
def test_signature_timestamps_too_old_or_too_far_in_the_future_are_refused(app, db, client, offset):
    r = _post(client, json.dumps(_event()).encode(), timestamp=int(time.time()) + offset)
    assert r.status_code == 400 and "ignature" in r.get_json()["error"]
    assert _refused(db) == [] and _stripe_events(db) == 0


def test_an_unknown_event_type_is_still_acknowledged(app, db, client):
    r = _post(client, json.dumps(_event(type="customer.created", data={"object": {"id": "cus_1"}})).encode())
    assert r.status_code == 200 and _refused(db) == []
