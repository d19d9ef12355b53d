"""Stripe reconciliation against localstripe (and recorded Stripe pages for what localstripe lacks):
a missed webhook is found and repaired once through the webhook's code path, ledger entries
Stripe does not know, amount mismatches, disputes, runs compared, the scheduler's queued runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat import scheduler
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.finance import reconciliation, reconciliation_queue, reconciliation_repair, reconciliation_report
from retreat.finance.reconciliation_models import (
    ItemCategory,
    ReconciliationItem,
    ReconciliationRun,
    RunStatus,
)
from retreat.models import AuditEvent
from retreat.payments import ledger
from retreat.payments.models import LedgerEntry, LedgerType, Payment
from retreat.timeutil import now_utc
from tests import factories
from tests import finance_helpers as fh
from tests import payments_helpers as ph
from tests.stripe_pages import RecordedStripe, record, record_objects


def _item(run, key: str) -> ReconciliationItem:
    found = db.session.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == run.id,
                                                                ReconciliationItem.match_key == key)).all()
    assert len(found) == 1, (key, [(i.match_key, i.category) for i in found])
    return found[0]


def _fh_cohort(**kw):
    return fh.cohort(starts_at=now_utc() + timedelta(days=120),
                     balance_due_on=(now_utc() + timedelta(days=90)).date(), **kw)


def _recent():
    return now_utc() - timedelta(minutes=2)


@pytest.fixture()
def finance(db):
    user = factories.user("finance", password=None)
    db.session.commit()
    return user


def test_a_payment_whose_webhook_never_came_is_found_and_repaired_once(db, stripe_app, finance):
    c = ph.cohort(capacity=3, deposit_minor=50000)
    enr = ph.applicant(c)
    db.session.commit()
    pid, pi = ph.start_and_confirm(enr)  # paid at Stripe; no webhook is ever delivered
    assert pi["status"] == "succeeded" and ledger.paid(enr.id) == 0

    run = reconciliation.run(since=_recent(), now=now_utc())
    assert run.status == RunStatus.DONE and run.missing_in_ledger_count >= 1
    item = _item(run, f"charge:{pi['id']}")
    assert item.category == ItemCategory.MISSING_IN_LEDGER and item.repairable and item.is_open
    assert (item.enrollment_id, item.cohort_id) == (enr.id, c.id)
    assert (item.stripe_amount_minor, item.stripe_currency, item.ledger_amount_minor) == (50000, "USD", None)
    assert item.stripe_object_id.startswith("ch_") and item.payment_intent_id == pi["id"]

    reconciliation_repair.repair(item.id, now=now_utc(), actor=finance)
    db.session.commit()
    charges = db.session.scalars(select(LedgerEntry).where(LedgerEntry.stripe_object_id == pi["id"])).all()
    assert [(e.entry_type, e.amount_minor) for e in charges] == [("charge", 50000)]
    assert ledger.paid(enr.id) == 50000
    assert db.session.get(Payment, pid).status == "succeeded"
    assert enr.seat == "confirmed"  # the webhook's whole effect, not just a ledger row
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "finance.reconciliation_repaired",
                                                        AuditEvent.object_id == str(item.id))).one()
    assert audit.actor_id == finance.id and audit.details["payment_intent"] == pi["id"]

    with pytest.raises(Conflict, match="already repaired"):
        reconciliation_repair.repair(item.id, now=now_utc(), actor=finance)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.stripe_object_id == pi["id"])) == 1

    again = reconciliation.run(since=_recent(), now=now_utc())
    assert _item(again, f"charge:{pi['id']}").category == ItemCategory.MATCHED
    diff = reconciliation_report.compare(run.id, again.id)
    assert f"charge:{pi['id']}" in {ch.key for ch in diff.resolved}
    assert f"charge:{pi['id']}" not in {ch.key for ch in diff.appeared + diff.changed}


def test_a_payment_whose_intent_id_was_never_stored_is_found_by_its_metadata(db, stripe_app, finance):
    c = ph.cohort(capacity=3, deposit_minor=20000)
    enr = ph.applicant(c)
    db.session.commit()
    pid, pi = ph.start_and_confirm(enr)
    db.session.get(Payment, pid).stripe_payment_intent_id = None  # the crash between Stripe and our commit
    db.session.commit()
    run = reconciliation.run(since=_recent(), now=now_utc())
    item = _item(run, f"charge:{pi['id']}")
    assert item.category == ItemCategory.MISSING_IN_LEDGER and item.repairable and item.enrollment_id == enr.id
    reconciliation_repair.repair(item.id, now=now_utc(), actor=finance)
    db.session.commit()
    assert db.session.get(Payment, pid).stripe_payment_intent_id == pi["id"]
    assert ledger.paid(enr.id) == 20000


def test_a_missed_refund_is_repaired_through_the_webhook_path(db, stripe_app, finance):
    from retreat.finance import stripe_events
    from retreat.payments import gateway

    c = ph.cohort(capacity=3, deposit_minor=30000)
    enr = ph.applicant(c)
    db.session.commit()
    _, pi = ph.start_and_confirm(enr)
    stripe_events.handle({"id": f"evt_ok_{pi['id']}", "type": "payment_intent.succeeded",
                          "data": {"object": {"id": pi["id"]}}}, now=now_utc())
    refund = gateway.create_refund(payment_intent_id=pi["id"], amount_minor=10000, idempotency_key="dash-1",
                                   metadata={})  # issued in the Stripe dashboard; no refund webhook
    run = reconciliation.run(since=_recent(), now=now_utc())
    assert _item(run, f"charge:{pi['id']}").category == ItemCategory.MATCHED
    item = _item(run, f"refund:{refund['id']}")
    assert item.category == ItemCategory.MISSING_IN_LEDGER and item.stripe_amount_minor == -10000
    assert item.enrollment_id == enr.id
    reconciliation_repair.repair(item.id, now=now_utc(), actor=finance)
    db.session.commit()
    assert ledger.paid(enr.id) == 20000
    assert ledger.find(LedgerType.REFUND, refund["id"]).amount_minor == -10000


def test_ledger_entries_stripe_does_not_know_and_amount_mismatches(db, stripe_app, finance):
    c = _fh_cohort()
    ghost = fh.seated(c, at=now_utc())  # its deposit charge is "pi_test_..": Stripe never saw it
    ghost_pi = db.session.scalar(select(Payment.stripe_payment_intent_id).where(Payment.enrollment_id == ghost.id))
    c2 = ph.cohort(capacity=3, deposit_minor=40000)
    enr = ph.applicant(c2)
    db.session.commit()
    pid, pi = ph.start_and_confirm(enr)
    # the ledger recorded a different amount than Stripe charged
    ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=39000, currency="USD",
                  object_id=pi["id"], payment_id=pid, now=now_utc())
    db.session.commit()
    run = reconciliation.run(since=_recent(), now=now_utc())
    missing = _item(run, f"charge:{ghost_pi}")
    assert missing.category == ItemCategory.MISSING_IN_STRIPE and missing.enrollment_id == ghost.id
    assert missing.ledger_amount_minor == c.deposit_minor and missing.stripe_amount_minor is None
    wrong = _item(run, f"charge:{pi['id']}")
    assert wrong.category == ItemCategory.MISMATCH
    assert (wrong.stripe_amount_minor, wrong.ledger_amount_minor) == (40000, 39000)
    assert "amount: Stripe $400.00, ledger $390.00" in wrong.note
    for it in (missing, wrong):  # the append-only ledger is not "repaired" by a click
        with pytest.raises(Conflict, match="append-only"):
            reconciliation_repair.repair(it.id, now=now_utc(), actor=finance)
    assert run.cursor is not None and run.cursor <= missing.stripe_created


def test_runs_are_not_duplicated_and_the_scheduler_runs_the_queued_one(db, stripe_app, finance):
    now = now_utc()
    first, created = reconciliation_queue.queue(since=now - timedelta(minutes=1), until=None, now=now, actor=finance)
    second, created_again = reconciliation_queue.queue(since=None, until=None, now=now, actor=finance)
    db.session.commit()
    assert created and not created_again and second.id == first.id
    with pytest.raises(Conflict, match="already queued"):
        reconciliation.run(now=now)
    job = scheduler.registered_jobs()["finance.reconcile_queued"]
    assert job.func(now_utc()) == 1
    db.session.expire_all()
    done = db.session.get(ReconciliationRun, first.id)
    assert done.status == RunStatus.DONE and done.active_slot is None and done.finished_at is not None
    assert done.progress_done == done.progress_total == done.objects_seen
    assert job.func(now_utc()) == 0  # nothing queued any more
    nxt, created = reconciliation_queue.queue(since=None, until=None, now=now_utc(), actor=finance)
    assert created and nxt.since == done.cursor  # the next run starts at the high-water mark


def test_a_stale_running_run_is_failed_and_frees_the_slot(db, finance):
    now = now_utc()
    stuck, _ = reconciliation_queue.queue(since=now - timedelta(days=1), until=None, now=now - timedelta(hours=1),
                                    actor=finance, start=True)
    db.session.commit()
    fresh, created = reconciliation_queue.queue(since=now - timedelta(days=1), until=None, now=now, actor=finance)
    assert created and fresh.id != stuck.id
    assert stuck.status == RunStatus.FAILED and "Interrupted" in stuck.error


def test_bad_windows_and_unknown_runs_change_nothing(db, finance):
    now = now_utc()
    with pytest.raises(ValidationFailed, match="before the start"):
        reconciliation_queue.queue(since=now - timedelta(days=1), until=now - timedelta(days=2), now=now, actor=finance)
    with pytest.raises(ValidationFailed, match="future"):
        reconciliation_queue.queue(since=now + timedelta(days=1), until=None, now=now, actor=finance)
    assert db.session.scalar(select(func.count()).select_from(ReconciliationRun)) == 0
    with pytest.raises(NotFound, match="#999999"):
        reconciliation_report.compare(999999, 999998)
    with pytest.raises(NotFound):
        reconciliation_repair.repair(999999, now=now, actor=finance)


def _dispute_pages(directory, *, pi_id: str, enrollment_id: int, amount: int, created: int):
    pi = {"id": pi_id, "object": "payment_intent", "amount": amount, "currency": "usd", "status": "succeeded",
          "metadata": {"enrollment": str(enrollment_id)}, "latest_charge": "ch_rec_1", "created": created}
    charge = {"id": "ch_rec_1", "object": "charge", "amount": amount, "amount_captured": amount, "currency": "usd",
              "status": "succeeded", "paid": True, "captured": True, "refunded": False, "disputed": True,
              "payment_intent": pi, "metadata": {}, "balance_transaction": "txn_rec_charge", "created": created}
    bts = [
        {"id": "txn_rec_dispute", "object": "balance_transaction", "type": "adjustment",
         "reporting_category": "dispute", "amount": -amount, "fee": 1500, "net": -amount - 1500, "currency": "usd",
         "source": "du_rec_1", "status": "available", "created": created + 60, "description": "Chargeback"},
        {"id": "txn_rec_charge", "object": "balance_transaction", "type": "charge", "reporting_category": "charge",
         "amount": amount, "fee": 0, "net": amount, "currency": "usd", "source": "ch_rec_1", "status": "available",
         "created": created},
    ]
    record(directory, "charges", [charge], page_size=100)
    record(directory, "balance_transactions", bts, page_size=100)
    record(directory, "refunds", [], page_size=100)
    record(directory, "payouts", [], page_size=100)
    record_objects(directory, [*bts, pi, dict(charge, payment_intent=pi_id), {
        "id": "du_rec_1", "object": "dispute", "amount": amount, "currency": "usd", "status": "needs_response",
        "reason": "fraudulent", "charge": "ch_rec_1", "payment_intent": pi_id, "created": created + 60}])


def test_a_dispute_is_listed_with_its_enrollment_and_recorded_by_repair(db, app, tmp_path, finance):
    c = _fh_cohort()
    enr = fh.seated(c, at=now_utc())
    payment = db.session.scalars(select(Payment).where(Payment.enrollment_id == enr.id)).one()
    db.session.commit()
    created = int(now_utc().timestamp()) - 100
    _dispute_pages(tmp_path, pi_id=payment.stripe_payment_intent_id, enrollment_id=enr.id,
                   amount=c.deposit_minor, created=created)
    old = dict(app.config)
    with RecordedStripe(tmp_path) as url:
        app.config.update(STRIPE_API_BASE=url, STRIPE_LIST_CREATED_FILTER=True)
        try:
            run = reconciliation.run(since=_recent(), now=now_utc())
            assert run.status == RunStatus.DONE, run.error
            assert _item(run, f"charge:{payment.stripe_payment_intent_id}").category == ItemCategory.MATCHED
            dispute = _item(run, "dispute:txn_rec_dispute")
            assert dispute.category == ItemCategory.DISPUTE and dispute.is_open and dispute.repairable
            assert (dispute.enrollment_id, dispute.cohort_id) == (enr.id, c.id)
            assert dispute.stripe_amount_minor == -c.deposit_minor
            assert "du_rec_1" in dispute.note and "fraudulent" in dispute.note
            fee = _item(run, "fee:txn_rec_dispute")  # the dispute fee: not in the ledger yet
            assert fee.category == ItemCategory.MISSING_IN_LEDGER and fee.stripe_amount_minor == -1500
            assert not fee.repairable
            assert run.dispute_count == 1
            reconciliation_repair.repair(dispute.id, now=now_utc(), actor=finance)
            db.session.commit()
            assert db.session.get(Payment, payment.id).disputed_at is not None
            with pytest.raises(Conflict, match="already repaired"):
                reconciliation_repair.repair(dispute.id, now=now_utc(), actor=finance)
            again = reconciliation.run(since=_recent(), now=now_utc())
            later = _item(again, "dispute:txn_rec_dispute")
            assert later.category == ItemCategory.DISPUTE and not later.is_open and "recorded" in later.note
            diff = reconciliation_report.compare(run.id, again.id)
            assert "dispute:txn_rec_dispute" in {ch.key for ch in diff.resolved}
            assert "fee:txn_rec_dispute" not in {ch.key for ch in diff.resolved + diff.appeared}
            assert diff.still_open >= 1
        finally:
            app.config.clear()
            app.config.update(old)


def test_compare_reports_what_appeared_and_changed(db, stripe_app, finance):
    c = _fh_cohort()
    first = reconciliation.run(since=_recent(), now=now_utc())
    enr = fh.seated(c, at=now_utc())  # a ledger entry Stripe does not know appears after the first run
    db.session.commit()
    second = reconciliation.run(since=first.since, now=now_utc())
    pi_id = db.session.scalar(select(Payment.stripe_payment_intent_id).where(Payment.enrollment_id == enr.id))
    diff = reconciliation_report.compare(first.id, second.id)
    assert f"charge:{pi_id}" in {ch.key for ch in diff.appeared}
    with pytest.raises(ValidationFailed):
        reconciliation_report.compare(first.id, first.id)


def test_stripe_unreachable_or_a_stopping_worker_fails_the_run_and_frees_the_slot(db, stripe_app, finance):
    app = stripe_app
    old = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens there
    try:
        run = reconciliation.run(since=_recent(), now=now_utc())
    finally:
        app.config["STRIPE_API_BASE"] = old
    assert run.status == RunStatus.FAILED and run.active_slot is None
    assert "payment provider" in run.error

    queued, _ = reconciliation_queue.queue(since=_recent(), until=None, now=now_utc(), actor=finance)
    db.session.commit()
    assert reconciliation.run_queued(now=now_utc(), should_stop=lambda: True) == 1
    db.session.expire_all()
    stopped = db.session.get(ReconciliationRun, queued.id)
    assert stopped.status == RunStatus.FAILED and "Run it again" in stopped.error
    assert reconciliation_queue.queue(since=_recent(), until=None, now=now_utc(), actor=finance)[1]


def test_a_charge_not_made_here_is_reported_but_not_repairable(db, stripe_app, finance):
    from retreat.payments import gateway

    pi = gateway.create_payment_intent(amount_minor=7700, currency="usd", idempotency_key="elsewhere-1",
                                       metadata={"source": "another shop"})
    pi = gateway.confirm_with_payment_method(pi["id"], gateway.create_test_payment_method(ph.VISA))
    run = reconciliation.run(since=_recent(), now=now_utc())
    item = _item(run, f"charge:{pi['id']}")
    assert item.category == ItemCategory.MISSING_IN_LEDGER and not item.repairable and item.enrollment_id is None
    assert "no payment here" in item.note
    with pytest.raises(Conflict, match="cannot be repaired here"):
        reconciliation_repair.repair(item.id, now=now_utc(), actor=finance)
    assert ledger.find(LedgerType.CHARGE, pi["id"]) is None
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "finance.reconciliation_repaired")) == 0
