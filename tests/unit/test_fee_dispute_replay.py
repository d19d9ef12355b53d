"""Fees and disputes under the replay harness: every event 3 times, shuffled, from concurrent threads
(PostgreSQL) gives the same ledger as one in-order delivery; each fee and dispute movement is
recorded exactly once, keyed by its balance transaction id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments import gateway, pricing
from retreat.payments.models import LedgerEntry
from tests import payments_helpers as ph
from tests.conftest import is_postgres
from tests.stripe_proxy import DISPUTE_FEE, stripe_fee

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")


def _scenario(app, proxy):
    """Deposit and balance paid, a dashboard refund on the balance, a dispute on the deposit whose
    funds were withdrawn and then reinstated. Returns the events Stripe would send."""
    with app.app_context():
        c = ph.cohort(price_minor=300000, deposit_minor=50000)
        enr = ph.applicant(c)
        db.session.commit()
        _, dep = ph.start_and_confirm(enr)
        from retreat.payments import checkout as payments
        from retreat.timeutil import now_utc

        payments.sync_payment_intent(dep, now=now_utc())  # the return page saw the deposit (no fee yet)
        db.session.commit()
        _, bal = ph.start_and_confirm(enr, "balance")
        re = gateway.create_refund(payment_intent_id=bal["id"], amount_minor=10000, idempotency_key="dash-fee",
                                   metadata={})
        dp = proxy.create_dispute(dep["id"])
        withdrawn = proxy.withdraw_dispute_funds(dp["id"])
        reinstated = proxy.reinstate_dispute_funds(dp["id"])
        events = [ph.event("payment_intent.succeeded", {"id": dep["id"]}),
                  ph.event("payment_intent.succeeded", {"id": bal["id"]}),
                  ph.event("refund.created", {"id": re["id"], "object": "refund"}),
                  ph.event("charge.dispute.created", dp),
                  ph.event("charge.dispute.funds_withdrawn", withdrawn),
                  ph.event("charge.dispute.funds_reinstated", reinstated)]
        return enr.id, events


def _snapshot(app, enr_id):
    with app.app_context():
        enr = db.session.get(Enrollment, enr_id)
        rows = list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.enrollment_id == enr_id)))
        q = pricing.quote(enr)
        return {"ledger": sorted((e.entry_type, e.amount_minor) for e in rows),
                "fee_keys": sorted(e.stripe_object_id[:4] for e in rows if e.entry_type in ("fee", "dispute")),
                "paid": q.paid, "balance": q.balance}


def test_fees_and_disputes_shuffled_triplicate_concurrent_equals_in_order(committing_app, stripe_proxy):
    app = committing_app
    app.config["STRIPE_API_BASE"] = stripe_proxy.url
    a_id, a_events = _scenario(app, stripe_proxy)
    client = app.test_client()
    for payload, sig in a_events:
        assert client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": sig}).status_code == 200
    expected = _snapshot(app, a_id)
    assert expected["ledger"] == sorted([
        ("charge", 50000), ("fee", -stripe_fee(50000, "USD")), ("charge", 250000), ("fee", -stripe_fee(250000, "USD")),
        ("refund", -10000), ("dispute", -50000), ("fee", -DISPUTE_FEE), ("dispute", 50000), ("fee", DISPUTE_FEE)])
    assert set(expected["fee_keys"]) == {"txn_"}
    assert expected["paid"] == 300000 - 10000

    b_id, b_events = _scenario(app, stripe_proxy)
    deliveries = b_events * 3
    codes = ph.deliver_concurrently(app, deliveries, threads=6, seed=11, timeout=90)
    assert codes.count(200) == len(deliveries), codes
    assert _snapshot(app, b_id) == expected
