"""Replay harness: every signed event 3 times, shuffled, from concurrent threads (PostgreSQL), gives
the same ledger and statuses as one in-order delivery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments import gateway, pricing
from retreat.payments.models import LedgerEntry, Payment, Refund
from tests import payments_helpers as ph
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")


def _scenario(app):
    """Deposit paid, balance paid, one failed attempt, a refund issued in Stripe. Returns events."""
    with app.app_context():
        c = ph.cohort(price_minor=300000, deposit_minor=50000)
        enr = ph.applicant(c)
        db.session.commit()
        _, dep = ph.start_and_confirm(enr)
        from retreat.payments import checkout as payments
        from retreat.timeutil import now_utc

        payments.sync_payment_intent(dep, now=now_utc())  # the return page saw the deposit
        db.session.commit()
        _, bad = ph.start_and_confirm(enr, "balance", card=ph.DECLINED)
        payments.sync_payment_intent(bad, now=now_utc())  # the return page said it failed
        db.session.commit()
        _, bal = ph.start_and_confirm(enr, "balance")
        re = gateway.create_refund(payment_intent_id=bal["id"], amount_minor=12345, idempotency_key="dash",
                                   metadata={})
        events = [ph.event("payment_intent.payment_failed", {"id": bad["id"]}),
                  ph.event("payment_intent.succeeded", {"id": bal["id"]}),
                  ph.event("refund.created", {"id": re["id"], "object": "refund"}),
                  ph.event("charge.refunded", {"id": bal["latest_charge"], "payment_intent": bal["id"]}),
                  ph.event("customer.updated", {"id": "cus_x"})]
        return enr.id, events


def _snapshot(app, enr_id):
    with app.app_context():
        enr = db.session.get(Enrollment, enr_id)
        entries = sorted((e.entry_type, e.amount_minor) for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.enrollment_id == enr_id)))
        pays = sorted((p.kind, p.status, p.amount_minor) for p in db.session.scalars(
            select(Payment).where(Payment.enrollment_id == enr_id)))
        refs = sorted((r.kind, r.status, r.amount_minor) for r in db.session.scalars(
            select(Refund).where(Refund.enrollment_id == enr_id)))
        q = pricing.quote(enr)
        return {"ledger": entries, "payments": pays, "refunds": refs, "status": enr.status, "seat": enr.seat,
                "paid": q.paid, "balance": q.balance}


def test_shuffled_triplicate_concurrent_delivery_equals_in_order(committing_app, localstripe):
    app = committing_app
    app.config["STRIPE_API_BASE"] = localstripe
    a_id, a_events = _scenario(app)
    client = app.test_client()
    for payload, sig in a_events:
        assert client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": sig}).status_code == 200
    expected = _snapshot(app, a_id)
    assert expected["paid"] == 300000 - 12345 and len(expected["ledger"]) == 3

    b_id, b_events = _scenario(app)
    deliveries = b_events * 3
    codes = ph.deliver_concurrently(app, deliveries, threads=8, seed=7, timeout=60)
    assert codes.count(200) == len(deliveries), codes
    got = _snapshot(app, b_id)
    assert got == expected
    # a forged copy changes nothing
    payload, _ = b_events[1]
    bad = app.test_client().post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=00"})
    assert bad.status_code == 400 and _snapshot(app, b_id) == expected
