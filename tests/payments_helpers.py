"""Helpers for payment tests: pay through localstripe and deliver signed webhook events."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import timedelta

from retreat.extensions import db
from retreat.payments import checkout as payments
from retreat.payments import gateway
from retreat.payments.models import PaymentKind
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc

VISA = "4242424242424242"
DECLINED = "4000000000000341"
_ev = itertools.count(1)


def cohort(**kw):
    kw.setdefault("starts_at", now_utc() + timedelta(days=120))
    kw.setdefault("balance_due_on", (now_utc() + timedelta(days=90)).date())
    return fc.cohort(**kw)


def applicant(c, **kw):
    return fc.applicant(c, now=now_utc(), **kw)


def start_and_confirm(enr, kind=PaymentKind.DEPOSIT, card=VISA, expected=None):
    """begin -> PaymentIntent -> card confirmed at localstripe. Returns (payment_id, pi dict)."""
    start = payments.begin(enr, kind, now=now_utc(), actor=enr.participant, expected_amount=expected)
    assert start.payment is not None, start.message
    pid = start.payment.id
    db.session.commit()
    pi = payments.ensure_intent(pid)
    pm = gateway.create_test_payment_method(card)
    pi = gateway.confirm_with_payment_method(pi["id"], pm)
    return pid, pi


def event(event_type: str, obj: dict, event_id: str | None = None) -> tuple[bytes, str]:
    from flask import current_app

    payload = gateway.event_payload(event_id or f"evt_test_{next(_ev)}_{id(obj)}", event_type, obj)
    return payload, gateway.signature_header(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])


def deliver_concurrently(app, deliveries: list[tuple[bytes, str]], *, threads: int, seed: int,
                         timeout: float = 90) -> list[int]:
    """Post signed webhook deliveries shuffled (by ``seed``) from ``threads`` clients that start
    together; the status codes received, in no particular order."""
    deliveries = list(deliveries)
    random.Random(seed).shuffle(deliveries)
    barrier = threading.Barrier(threads)
    codes, lock = [], threading.Lock()

    def worker(chunk):
        c = app.test_client()
        barrier.wait()
        for payload, sig in chunk:
            r = c.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": sig})
            with lock:
                codes.append(r.status_code)

    workers = [threading.Thread(target=worker, args=(deliveries[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout)
    return codes


def deliver(client, event_type: str, obj: dict, event_id: str | None = None):
    payload, sig = event(event_type, obj, event_id)
    return client.post("/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": sig, "Content-Type": "application/json"})


from tests.conftest import signed_in  # noqa: E402,F401  (re-exported for payment tests)


def finance_refund(client, enr_id: int, amount: str, reason: str, internal_note: str = ""):
    """Finance's two-step refund through the pages: check (the confirmation page), then confirm.
    Returns (confirmation page response, confirm response)."""
    import re

    data = {"amount": amount, "reason": reason, "internal_note": internal_note}
    page = client.post(f"/finance/payments/enrollments/{enr_id}/refund", data=data)
    assert page.status_code == 200, page.get_data(as_text=True)[-1500:]
    expected = re.search(r'name="expected"[^>]*value="(\d+)"|value="(\d+)"[^>]*name="expected"',
                         page.get_data(as_text=True))
    assert expected, "the confirmation page carries what could be refunded"
    done = client.post(f"/finance/payments/enrollments/{enr_id}/refund/confirm",
                       data=data | {"expected": expected.group(1) or expected.group(2)})
    return page, done
