"""Stripe's fee on a refund: when the refund's balance transaction reports a fee, a signed webhook
event records it once as a ``fee`` ledger entry keyed by the ``txn_`` id; what the participant paid
is unchanged by it. (localstripe reports no fee on refunds: the balance transaction read is
replaced here by one with a fee, as real Stripe can send.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from retreat.extensions import db as _db
from retreat.payments import checkout as payments
from retreat.payments import gateway, ledger, refunds
from retreat.payments.models import LedgerEntry, Refund
from retreat.timeutil import now_utc
from tests import factories
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")
TXN = "txn_refundfee_test_1"


def test_a_refund_fee_from_a_signed_event_is_recorded_once(db, client, monkeypatch):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    _db.session.commit()
    # no fee reported yet when finance refunds
    monkeypatch.setattr(gateway, "retrieve_balance_transaction",
                        lambda txn_id: {"id": txn_id, "object": "balance_transaction", "amount": -10000, "fee": 0,
                                        "net": -10000, "currency": "USD"})
    done = refunds.issue_finance_refund(enr, "100.00", reason="Goodwill", now=now_utc(),
                                        actor=factories.user("finance", password=None))
    assert len(done) == 1
    stripe_id = done[0].stripe_refund_id
    real_retrieve = gateway.retrieve_refund

    def with_txn(refund_id):
        r = real_retrieve(refund_id)
        return r | {"balance_transaction": TXN}

    monkeypatch.setattr(gateway, "retrieve_refund", with_txn)
    monkeypatch.setattr(gateway, "retrieve_balance_transaction",
                        lambda txn_id: {"id": txn_id, "object": "balance_transaction", "amount": -10000, "fee": 25,
                                        "net": -10025, "currency": "USD"})
    for event_id in ("evt_refund_fee_1", "evt_refund_fee_1", "evt_refund_fee_2"):  # a duplicate, then another
        resp = ph.deliver(client, "refund.updated", {"id": stripe_id, "object": "refund"}, event_id=event_id)
        assert resp.status_code == 200
    _db.session.expire_all()
    fees = _db.session.scalars(select(LedgerEntry).where(LedgerEntry.entry_type == "fee",
                                                         LedgerEntry.refund_id.is_not(None))).all()
    refund = _db.session.scalar(select(Refund))
    assert [(f.amount_minor, f.stripe_object_id, f.refund_id) for f in fees] == [(-25, TXN, refund.id)]
    assert ledger.paid(enr.id) == 50000 - 10000  # the fee is the practice's cost, not a refund


def test_no_fee_no_entry(db, client):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    _db.session.commit()
    done = refunds.issue_finance_refund(enr, "50.00", reason="Goodwill", now=now_utc(),
                                        actor=factories.user("finance", password=None))
    assert ph.deliver(client, "refund.updated", {"id": done[0].stripe_refund_id, "object": "refund"}).status_code == 200
    _db.session.expire_all()
    assert _db.session.scalars(select(LedgerEntry).where(LedgerEntry.refund_id.is_not(None),
                                                         LedgerEntry.entry_type == "fee")).all() == []
