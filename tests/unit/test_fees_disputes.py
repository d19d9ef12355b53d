"""Stripe fees and disputes in the ledger, against localstripe behind the fee/dispute proxy.

Fees: a succeeded charge's balance transaction is re-fetched and its fee recorded once as a
negative ``fee`` entry keyed by the ``txn_`` id; it never reduces what the participant paid.
Disputes: funds withdrawn / reinstated are ``dispute`` entries keyed by their ``txn_`` ids.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retreat.finance import reports as finance_reports
from retreat.payments import checkout as payments
from retreat.payments import gateway, ledger, pricing
from retreat.payments.models import LedgerEntry, Payment, PaymentKind
from retreat.timeutil import now_utc
from tests import payments_helpers as ph
from tests.stripe_proxy import DISPUTE_FEE, stripe_fee

pytestmark = pytest.mark.usefixtures("proxy_app")


def _ledger(enr):
    return sorted((e.entry_type, e.amount_minor) for e in ledger.entries(enr.id))


def _txn_of(pi):
    return gateway.retrieve_charge(pi["latest_charge"])["balance_transaction"]


def test_fee_recorded_once_keyed_by_balance_transaction_and_not_counted_as_paid(db, client):
    c = ph.cohort(price_minor=300000, deposit_minor=50000)
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    for event_id in ("evt_fee_1", "evt_fee_1", None):  # a duplicate and a second event for the same charge
        assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]}, event_id).status_code == 200
    db.session.expire_all()
    fee = stripe_fee(50000, "USD")
    assert fee == 1480
    assert _ledger(enr) == [("charge", 50000), ("fee", -fee)]
    entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.entry_type == "fee"))
    assert entry.stripe_object_id == _txn_of(pi) and entry.stripe_object_id.startswith("txn_")
    assert entry.payment_id == pid and entry.currency == "USD"
    q = pricing.quote(enr)
    assert q.paid == 50000 and q.balance == 250000  # the fee is the practice's cost, not the participant's
    usd = finance_reports.totals(finance_reports.make_filter(tz="UTC"))["USD"]
    assert usd.get("fees") == -fee and usd.collected == 50000 and usd.net == 50000 - fee


def test_return_page_check_records_the_fee_and_the_webhook_adds_nothing(db, client):
    c = ph.cohort(price_minor=200000, deposit_minor=40000, currency="JPY")
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    signed = ph.signed_in(client.application, enr.participant)
    r = signed.get(f"/me/payments/{enr.id}/return/{pid}")
    assert r.status_code == 200
    db.session.expire_all()
    assert _ledger(enr) == [("charge", 40000), ("fee", -stripe_fee(40000, "JPY"))]
    ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]})
    db.session.expire_all()
    assert _ledger(enr) == [("charge", 40000), ("fee", -1440)]


def test_a_fee_missed_by_the_first_sync_is_added_by_a_later_event(db, client):
    c = ph.cohort(price_minor=300000, deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())  # the body only: no balance transaction attached
    db.session.flush()
    assert _ledger(enr) == [("charge", 50000)]
    ph.deliver(client, "charge.refunded", {"id": pi["latest_charge"], "payment_intent": pi["id"]})
    db.session.expire_all()
    assert _ledger(enr) == [("charge", 50000), ("fee", -1480)]


def _paid_deposit(client):
    c = ph.cohort(price_minor=300000, deposit_minor=50000)
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]})
    return enr, pid, pi


def test_dispute_withdrawn_then_reinstated_moves_paid_and_balance(db, client, stripe_proxy):
    enr, pid, pi = _paid_deposit(client)
    dp = stripe_proxy.create_dispute(pi["id"])
    assert ph.deliver(client, "charge.dispute.created", dp).status_code == 200
    db.session.expire_all()
    assert db.session.get(Payment, pid).disputed_at is not None
    assert pricing.quote(enr).paid == 50000  # opening a dispute moves no money

    withdrawn = stripe_proxy.withdraw_dispute_funds(dp["id"])
    assert ph.deliver(client, "charge.dispute.funds_withdrawn", withdrawn).status_code == 200
    db.session.expire_all()
    txn = withdrawn["balance_transactions"][0]["id"]
    assert _ledger(enr) == sorted([("charge", 50000), ("fee", -1480), ("dispute", -50000), ("fee", -DISPUTE_FEE)])
    assert ledger.find(ledger.LedgerType.DISPUTE, txn).amount_minor == -50000
    q = pricing.quote(enr)
    assert q.paid == 0 and q.balance == 300000

    reinstated = stripe_proxy.reinstate_dispute_funds(dp["id"])
    for _ in range(2):
        ph.deliver(client, "charge.dispute.funds_reinstated", reinstated, f"evt_reinstate_{dp['id']}")
    db.session.expire_all()
    assert _ledger(enr) == sorted([("charge", 50000), ("fee", -1480), ("dispute", -50000), ("fee", -DISPUTE_FEE),
                                   ("dispute", 50000), ("fee", DISPUTE_FEE)])
    q = pricing.quote(enr)
    assert q.paid == 50000 and q.balance == 250000
    usd = finance_reports.totals(finance_reports.make_filter(tz="UTC"))["USD"]
    assert usd.get("disputes") == 0 and usd.get("fees") == -1480


def test_dispute_events_out_of_order_converge(db, client, stripe_proxy):
    enr, pid, pi = _paid_deposit(client)
    dp = stripe_proxy.create_dispute(pi["id"], amount=20000)
    withdrawn = stripe_proxy.withdraw_dispute_funds(dp["id"])
    # The withdrawal event arrives before the creation event, the creation event twice.
    ph.deliver(client, "charge.dispute.funds_withdrawn", withdrawn)
    ph.deliver(client, "charge.dispute.created", dp)
    ph.deliver(client, "charge.dispute.created", dp)
    db.session.expire_all()
    assert db.session.get(Payment, pid).disputed_at is not None
    assert pricing.quote(enr).paid == 30000
    assert sorted(e.amount_minor for e in ledger.entries(enr.id) if e.entry_type == "dispute") == [-20000]


def test_dispute_on_someone_elses_charge_or_unknown_dispute_changes_nothing(db, client, stripe_proxy):
    foreign = gateway.create_payment_intent(amount_minor=5000, currency="usd", idempotency_key="foreign-dp",
                                            metadata={})
    pm = gateway.create_test_payment_method(ph.VISA)
    foreign = gateway.confirm_with_payment_method(foreign["id"], pm)
    dp = stripe_proxy.withdraw_dispute_funds(stripe_proxy.create_dispute(foreign["id"])["id"])
    before = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    r = ph.deliver(client, "charge.dispute.funds_withdrawn", dp)
    assert r.status_code == 200 and r.json["outcome"] == "not ours"
    r = ph.deliver(client, "charge.dispute.funds_withdrawn", {"id": "dp_doesnotexist", "object": "dispute"})
    assert r.status_code == 503  # cannot be re-fetched: Stripe will retry; nothing recorded
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == before


def test_finance_sees_disputed_payments(db, client, stripe_proxy, make_client):
    enr, pid, pi = _paid_deposit(client)
    dp = stripe_proxy.withdraw_dispute_funds(stripe_proxy.create_dispute(pi["id"])["id"])
    ph.deliver(client, "charge.dispute.funds_withdrawn", dp)
    finance = make_client("finance")
    page = finance.get("/finance/payments").get_data(as_text=True)
    assert enr.participant.name in page and "Disputed funds" in page
    assert "-$500.00" in page.replace("−", "-") and "-$15.00" in page.replace("−", "-")
    detail = finance.get(f"/finance/payments/enrollments/{enr.id}").get_data(as_text=True)
    assert "dispute" in detail.lower()
    assert PaymentKind.DEPOSIT.value in detail.lower()
