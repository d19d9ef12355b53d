"""Deposits and balances against localstripe: the seat, the ledger, receipts, bad input."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import EnrollmentStatus, SeatState
from retreat.core.errors import Conflict, ValidationFailed
from retreat.models import OutboxMessage
from retreat.payments import balances, gateway, ledger, pricing, refunds
from retreat.payments import checkout as payments
from retreat.payments.models import LedgerEntry, Payment, PaymentKind, PaymentStatus, Refund, StripeEvent
from retreat.timeutil import now_utc, zone
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def _ledger(enr):
    return sorted((e.entry_type, e.amount_minor) for e in ledger.entries(enr.id))


def test_deposit_paid_confirms_seat_records_charge_once_and_queues_receipt(db, client):
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    assert pi["status"] == "succeeded" and pi["amount"] == 50000
    assert pi["metadata"] == {"enrollment": str(enr.id), "cohort": str(c.id), "participant": str(enr.participant_id),
                              "kind": "deposit", "payment": str(pid)}
    for _ in range(2):  # the same event twice, and a second event for the same intent
        r = ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"], "object": "payment_intent"}, "evt_dup_1")
        assert r.status_code == 200
    assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]}).status_code == 200
    db.session.expire_all()
    assert enr.seat == SeatState.CONFIRMED
    assert _ledger(enr) == [("charge", 50000)]
    q = pricing.quote(enr)
    assert (q.paid, q.balance) == (50000, 400000)
    assert db.session.get(Payment, pid).status == PaymentStatus.SUCCEEDED
    assert db.session.get(Payment, pid).idempotency_key == f"deposit-{enr.id}-1"
    receipts = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "receipt_charge")).all()
    assert len(receipts) == 1 and receipts[0].context["balance"] == "$4,000.00"
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 2
    # the default plan: the balance due on the cohort's date, with reminders 7 d, 1 d before and overdue
    keys = {m.dedupe_key.rsplit("-", 1)[-1] for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "payment_reminder"))}
    assert keys == {"due7", "due1", "overdue"}


def test_return_page_sync_without_webhook_and_double_begin_is_one_attempt(db):
    c = ph.cohort()
    enr = ph.applicant(c)
    first = payments.begin(enr, "deposit", now=now_utc(), actor=None)
    again = payments.begin(enr, "deposit", now=now_utc(), actor=None)
    assert first.payment.id == again.payment.id
    pid, pi = ph.start_and_confirm(enr)
    assert pid == first.payment.id
    payments.sync_payment_intent(gateway.retrieve_payment_intent(pi["id"]), now=now_utc())
    payments.sync_payment_intent(gateway.retrieve_payment_intent(pi["id"]), now=now_utc())
    assert _ledger(enr) == [("charge", c.deposit_minor)]


def test_amount_not_matching_the_server_price_is_refused_and_changes_nothing(db):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    with pytest.raises(ValidationFailed, match="now \\$500.00, not \\$400.00"):
        payments.begin(enr, "deposit", now=now_utc(), actor=None, expected_amount=40000)
    db.session.expire_all()
    assert enr.seat == SeatState.NONE and c.seats_taken == 0
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    with pytest.raises(ValidationFailed):
        payments.begin(enr, "deposit", now=now_utc(), actor=None, expected_amount="12.5")


def test_declined_card_fails_releases_the_hold_and_says_why(db, client):
    c = ph.cohort(capacity=1)
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr, card=ph.DECLINED)
    assert pi["status"] == "requires_payment_method" and pi["failure_message"]
    ph.deliver(client, "payment_intent.payment_failed", {"id": pi["id"]})
    db.session.expire_all()
    p = db.session.get(Payment, pid)
    assert p.status == PaymentStatus.FAILED and p.failure_message
    assert enr.seat == SeatState.NONE and c.seats_taken == 0
    assert ledger.entries(enr.id) == []
    # a new attempt gets a new key and a fresh hold
    pid2, pi2 = ph.start_and_confirm(enr)
    assert db.session.get(Payment, pid2).idempotency_key == f"deposit-{enr.id}-2"


def test_paying_after_the_hold_expired_and_the_seat_went_is_refunded_in_full(db, client):
    c = ph.cohort(capacity=1)
    enr = ph.applicant(c)
    pid, pi_created = None, None
    start = payments.begin(enr, "deposit", now=now_utc() - timedelta(hours=2), actor=None)
    pid = start.payment.id
    db.session.commit()
    pi_created = payments.ensure_intent(pid)
    seats.sweep_expired_holds(now_utc())  # the 30-minute hold lapsed
    other = ph.applicant(c)
    assert seats.take_hold(other, now=now_utc(), actor=None).result == "held"
    db.session.commit()
    pi = gateway.confirm_with_payment_method(pi_created["id"], gateway.create_test_payment_method(ph.VISA))
    assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]}).status_code == 200
    db.session.expire_all()
    assert enr.seat == SeatState.NONE
    refund = db.session.scalar(select(Refund).where(Refund.payment_id == pid))
    assert refund.kind == "seat_lost" and refund.status == "succeeded" and refund.stripe_refund_id
    assert _ledger(enr) == [("charge", c.deposit_minor), ("refund", -c.deposit_minor)]
    assert ledger.paid(enr.id) == 0


def test_paying_an_expired_hold_when_a_seat_is_free_still_confirms(db, client):
    c = ph.cohort(capacity=3)
    enr = ph.applicant(c)
    start = payments.begin(enr, "deposit", now=now_utc() - timedelta(hours=2), actor=None)
    db.session.commit()
    pi = payments.ensure_intent(start.payment.id)
    seats.sweep_expired_holds(now_utc())
    pi = gateway.confirm_with_payment_method(pi["id"], gateway.create_test_payment_method(ph.VISA))
    ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]})
    db.session.expire_all()
    assert enr.seat == SeatState.CONFIRMED and ledger.paid(enr.id) == c.deposit_minor


def test_balance_in_installments_then_balance_paid(db, client):
    c = ph.cohort(price_minor=100000, deposit_minor=10000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    plan = payments.choose_plan(enr, 4, now=now_utc(), actor=None)
    assert [i.amount_minor for i in plan] == [22500] * 4 and plan[-1].due_on == c.balance_due_on
    with pytest.raises(ValidationFailed):
        payments.choose_plan(enr, 7, now=now_utc(), actor=None)
    assert payments.amount_due(enr, PaymentKind.INSTALLMENT) == 22500
    _, pi = ph.start_and_confirm(enr, PaymentKind.INSTALLMENT, expected=22500)
    payments.sync_payment_intent(pi, now=now_utc())
    rows = payments.installment_progress(enr)
    assert [r["is_paid"] for r in rows] == [True, False, False, False]
    cancelled = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.dedupe_key.like(f"installment-{plan[0].id}-%"))).all()
    assert {m.status for m in cancelled} == {"cancelled"}
    _, pi = ph.start_and_confirm(enr, PaymentKind.BALANCE, expected=67500)
    payments.sync_payment_intent(pi, now=now_utc())
    db.session.expire_all()
    assert enr.status == EnrollmentStatus.BALANCE_PAID or enr.status == EnrollmentStatus.APPLIED
    assert pricing.quote(enr).balance == 0
    assert ledger.paid(enr.id) == 100000


def test_balance_paid_status_after_clearance(db):
    from tests import factories_cohorts as fc

    c = ph.cohort(price_minor=30000, deposit_minor=10000)
    enr = fc.cleared(c, now=now_utc())
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    assert enr.status == EnrollmentStatus.DEPOSIT_PAID
    _, pi = ph.start_and_confirm(enr, PaymentKind.BALANCE)
    payments.sync_payment_intent(pi, now=now_utc())
    assert enr.status == EnrollmentStatus.BALANCE_PAID


def test_overdue_balances_for_finance(db):
    c = ph.cohort(price_minor=30000, deposit_minor=10000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    noon_after = datetime.combine(c.balance_due_on + timedelta(days=1), time(12, 0), zone(c.timezone))
    late = balances.overdue(now=noon_after)
    assert [(r.enrollment_id, r.overdue) for r in late] == [(enr.id, 20000)]
    assert balances.overdue(now=noon_after - timedelta(days=1)) == []


def test_balance_before_deposit_is_refused(db):
    enr = ph.applicant(ph.cohort())
    with pytest.raises(Conflict):
        payments.begin(enr, "balance", now=now_utc(), actor=None)


def test_refunds_never_exceed_what_was_paid(db, client):
    from tests import factories

    c = ph.cohort(price_minor=100000, deposit_minor=20000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    staff = factories.user("finance", password=None)
    with pytest.raises(ValidationFailed, match="more than was paid"):
        refunds.issue_finance_refund(enr, "200.01", reason="goodwill", now=now_utc(), actor=staff)
    with pytest.raises(ValidationFailed, match="reason"):
        refunds.issue_finance_refund(enr, "10", reason=" ", now=now_utc(), actor=staff)
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    done = refunds.issue_finance_refund(enr, "50.00", reason="goodwill", now=now_utc(), actor=staff)
    assert [r.amount_minor for r in done] == [5000] and done[0].status == "succeeded"
    stripe_side = gateway.list_refunds(pi["id"])
    assert [r["amount"] for r in stripe_side] == [5000]
    # the same Stripe refund arriving by webhook changes nothing
    ph.deliver(client, "refund.created", {"id": stripe_side[0]["id"], "object": "refund"})
    ph.deliver(client, "charge.refunded", {"id": pi["latest_charge"], "payment_intent": pi["id"]})
    assert _ledger(enr) == [("charge", 20000), ("refund", -5000)]
    refunds.issue_finance_refund(enr, "150", reason="rest", now=now_utc(), actor=staff)
    with pytest.raises(ValidationFailed, match="at most \\$0.00"):
        refunds.issue_finance_refund(enr, "0.01", reason="more", now=now_utc(), actor=staff)
    assert ledger.paid(enr.id) == 0
    receipts = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "receipt_refund")).all()
    assert len(receipts) == 2


def test_not_cleared_refunds_the_full_deposit_automatically(db):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    done = refunds.refund_deposit_not_cleared(enr, now=now_utc(), actor=None)
    assert [(r.kind, r.amount_minor, r.status) for r in done] == [("not_cleared", 50000, "succeeded")]
    assert ledger.paid(enr.id) == 0
    assert refunds.refund_deposit_not_cleared(enr, now=now_utc(), actor=None) == []  # repeat: nothing more


def test_practice_cancelled_refunds_everything_across_payments(db):
    c = ph.cohort(price_minor=60000, deposit_minor=10000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    _, pi = ph.start_and_confirm(enr, PaymentKind.BALANCE)
    payments.sync_payment_intent(pi, now=now_utc())
    done = refunds.refund_practice_cancelled(enr, now=now_utc(), actor=None)
    assert sorted(r.amount_minor for r in done) == [10000, 50000]
    assert ledger.paid(enr.id) == 0


def test_refund_event_before_the_charge_event_records_both_once(db, client):
    c = ph.cohort(deposit_minor=30000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    re = gateway.create_refund(payment_intent_id=pi["id"], amount_minor=1000, idempotency_key="dash-1",
                               metadata={})  # issued in the dashboard
    assert ph.deliver(client, "refund.created", {"id": re["id"], "object": "refund"}).status_code == 200
    assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]}).status_code == 200
    db.session.expire_all()
    assert _ledger(enr) == [("charge", 30000), ("refund", -1000)]
    assert enr.seat == SeatState.CONFIRMED
    ext = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == re["id"]))
    assert ext.kind == "external"


def test_forged_or_missing_signature_is_rejected_and_changes_nothing(db, client):
    c = ph.cohort()
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payload, sig = ph.event("payment_intent.succeeded", {"id": pi["id"]})
    forged = payload.replace(b"payment_intent.succeeded", b"payment_intent.succeeded ")
    for headers in ({"Stripe-Signature": sig.replace("v1=", "v1=0")}, {}, {"Stripe-Signature": "garbage"}):
        assert client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 400
    assert client.post("/webhooks/stripe", data=forged, headers={"Stripe-Signature": sig}).status_code == 400
    assert client.post("/webhooks/stripe", data=b"not json", headers={"Stripe-Signature": sig}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    db.session.expire_all()
    assert enr.seat == SeatState.HELD


def test_unknown_event_types_and_foreign_objects_are_acknowledged(db, client):
    r = ph.deliver(client, "customer.created", {"id": "cus_123"})
    assert r.status_code == 200 and r.json["outcome"] == "acknowledged"
    foreign = gateway.create_payment_intent(amount_minor=100, currency="usd", idempotency_key="x", metadata={})
    r = ph.deliver(client, "payment_intent.canceled", {"id": foreign["id"]})
    assert r.status_code == 200 and r.json["outcome"] == "not ours"


def test_dispute_marks_the_payment_for_finance(db, client, proxy_app, stripe_proxy):
    c = ph.cohort()
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    dp = stripe_proxy.create_dispute(pi["id"])  # the dispute is re-fetched: it must exist in Stripe
    ph.deliver(client, "charge.dispute.created", dp)
    db.session.expire_all()
    p = db.session.get(Payment, pid)
    assert p.disputed_at is not None and p.status == "succeeded"


def test_withdrawal_refund_follows_policy(db):
    c = ph.cohort(deposit_minor=50000, starts_at=now_utc() + timedelta(days=45))
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    enrollment.withdraw(enr, now=now_utc(), actor=enr.participant)
    done = refunds.refund_on_withdrawal(enr, now=now_utc(), actor=enr.participant)
    assert [r.amount_minor for r in done] == [25000]
    assert ledger.paid(enr.id) == 25000


def test_a_refund_stripe_refused_is_retried_later_and_never_doubled(db, app):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    planned = refunds.plan(enr, 20000, kind=refunds.RefundKind.FINANCE, reason="x", now=now_utc(), actor=None)
    db.session.commit()
    real = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # Stripe unreachable
    try:
        with pytest.raises(gateway.GatewayError):
            refunds.submit([planned[0].id], now=now_utc())
    finally:
        app.config["STRIPE_API_BASE"] = real
    assert db.session.get(Refund, planned[0].id).status == "pending" and ledger.paid(enr.id) == 50000
    with pytest.raises(ValidationFailed):  # the pending refund is counted as decided
        refunds.plan(enr, 30001, kind=refunds.RefundKind.FINANCE, reason="x", now=now_utc(), actor=None)
    assert [r.id for r in refunds.submit_pending(now=now_utc())] == [planned[0].id]
    assert refunds.submit_pending(now=now_utc()) == []
    assert ledger.paid(enr.id) == 30000 and len(gateway.list_refunds(pi["id"])) == 1
