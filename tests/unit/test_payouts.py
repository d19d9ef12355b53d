"""Payouts fetched from Stripe (localstripe behind the fee/dispute/payout proxy): lines linked to
enrollment and cohort, totals that add up, flagged mismatches, idempotent re-syncs, CSV sums."""

from __future__ import annotations

import csv
import io
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.finance import exports, payouts
from retreat.finance import reports as finance_reports
from retreat.finance.payout_models import Payout, PayoutLine
from retreat.models import AuditEvent
from retreat.payments import checkout as payments
from retreat.payments.models import LedgerEntry
from retreat.timeutil import now_utc
from tests import payments_helpers as ph
from tests import payout_helpers as poh
from tests.conftest import is_postgres

pytestmark = pytest.mark.usefixtures("proxy_app")


def _payout(stripe_id):
    return db.session.scalar(select(Payout).where(Payout.stripe_payout_id == stripe_id))


def test_payout_lines_link_to_enrollment_and_add_up_to_the_payout(db, client, stripe_proxy):
    sc = poh.paid_refunded_disputed(client, stripe_proxy)
    po = stripe_proxy.create_payout(sc.txns)
    report = payouts.sync(now_utc())
    assert report.payouts_seen >= 1 and po["id"] not in dict(report.flagged)
    payout = _payout(po["id"])
    assert payout.status == "paid" and payout.currency == "USD"
    lines = {ln.balance_transaction_id: ln for ln in payout.lines}
    assert set(lines) == set(sc.txns)
    kinds = sorted(ln.kind for ln in lines.values())
    assert kinds == ["charge", "charge", "dispute", "refund"]
    for ln in lines.values():
        assert ln.enrollment_id == sc.enrollment.id and ln.cohort_id == sc.enrollment.cohort_id
        assert ln.ledger_entry_id is not None and ln.payment_id is not None
    t = payouts.totals([payout.id])[payout.id]
    assert t.net == payout.amount_minor and payouts.difference(payout, t) == 0
    assert t.gross == 50000 + 250000 - 10000 - 50000
    assert t.fee == 1480 + 7280 + 1500
    # The payout's net is exactly the money the ledger recorded for these Stripe objects.
    ledger_sum = db.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(
        LedgerEntry.enrollment_id == sc.enrollment.id, LedgerEntry.entry_type.in_(("charge", "refund", "dispute",
                                                                                     "fee"))))
    assert ledger_sum == payout.amount_minor


def test_resync_adds_nothing_and_updates_status(db, client, stripe_proxy):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, dispute=False)
    po = stripe_proxy.create_payout(sc.txns, status="in_transit")
    payouts.sync(now_utc())
    count = db.session.scalar(select(func.count()).select_from(PayoutLine))
    stripe_proxy.set_payout_status(po["id"], "paid")
    again = payouts.sync(now_utc())
    assert again.payouts_new == 0 and again.lines_new == 0
    assert db.session.scalar(select(func.count()).select_from(PayoutLine)) == count
    assert db.session.scalar(select(func.count()).select_from(Payout).where(
        Payout.stripe_payout_id == po["id"])) == 1
    assert _payout(po["id"]).status == "paid"


def test_payout_that_does_not_add_up_is_flagged_with_the_difference(db, client, stripe_proxy):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, refund=0, dispute=False)
    real = sum(stripe_proxy.balance_transaction(t)["net"] for t in sc.txns)
    po = stripe_proxy.create_payout(sc.txns, amount=real + 123)
    report = payouts.sync(now_utc())
    assert (po["id"], -123) in report.flagged
    payout = _payout(po["id"])
    assert payouts.difference(payout, payouts.totals([payout.id])[payout.id]) == -123
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "finance.payout_mismatch",
                                                    AuditEvent.object_id == po["id"]))
    assert ev is not None and ev.details["difference_minor"] == -123


def test_charge_whose_fee_was_never_recorded_is_linked_through_stripe(db, client, stripe_proxy):
    c = ph.cohort(price_minor=300000, deposit_minor=50000)
    enr = ph.applicant(c)
    _, dep = ph.start_and_confirm(enr)
    payments.sync_payment_intent(dep, now=now_utc())  # charge recorded from the body: no fee entry
    db.session.flush()
    po = stripe_proxy.create_payout([poh.charge_txn(dep)])
    payouts.sync(now_utc())
    (line,) = _payout(po["id"]).lines
    assert line.enrollment_id == enr.id and line.kind == "charge" and line.fee_minor == 1480


def test_sync_since_a_date_and_bad_dates(db, client, stripe_proxy):
    with pytest.raises(ValidationFailed):
        payouts.sync(now_utc(), since=date(1990, 1, 1))
    sc = poh.paid_refunded_disputed(client, stripe_proxy, refund=0, dispute=False)
    po = stripe_proxy.create_payout(sc.txns)
    future = (now_utc() + timedelta(days=2)).date()
    assert payouts.sync(now_utc(), since=future).payouts_seen == 0 and _payout(po["id"]) is None
    payouts.sync(now_utc(), since=now_utc().date())
    assert _payout(po["id"]) is not None


def _csv(chunks):
    return list(csv.DictReader(io.StringIO("".join(chunks))))


def test_csv_sums_equal_ledger_sums_and_ledger_csv_has_payout_ids(db, client, stripe_proxy):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, name="=HYPERLINK(1)")
    po = stripe_proxy.create_payout(sc.txns)
    payouts.sync(now_utc())
    payout = _payout(po["id"])
    rows = _csv(payouts.csv_text(payouts.PayoutFilter(payout_id=payout.id)))
    assert len(rows) == 4 and all(r["payout_id"] == po["id"] for r in rows)
    assert all(r["participant"] == "'=HYPERLINK(1)" for r in rows)  # formula injection guarded
    assert all(Decimal(r["net"]) == Decimal(r["gross"]) + Decimal(r["fee"]) for r in rows)
    assert sum(Decimal(r["net"]) for r in rows) == Decimal(payout.amount_minor) / 100
    flt = finance_reports.make_filter(tz="UTC", cohort_id=sc.enrollment.cohort_id)
    ledger_rows = _csv(exports.ledger_csv(flt))
    money = [r for r in ledger_rows if r["type"] in ("charge", "refund", "dispute", "fee")]
    assert sum(Decimal(r["net"]) for r in money) == sum(Decimal(r["net"]) for r in rows)
    assert {r["payout_id"] for r in money} == {po["id"]}  # every money entry names its payout
    by_cohort = _csv(payouts.csv_text(payouts.PayoutFilter(cohort_id=sc.enrollment.cohort_id)))
    assert sorted(r["stripe_balance_transaction_id"] for r in by_cohort) == sorted(sc.txns)


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_concurrent_syncs_write_each_payout_and_line_once(committing_app, stripe_proxy):
    app = committing_app
    app.config["STRIPE_API_BASE"] = stripe_proxy.url
    with app.app_context():
        sc = poh.paid_refunded_disputed(app.test_client(), stripe_proxy)
        po = stripe_proxy.create_payout(sc.txns)
        db.session.commit()
    barrier, errors = threading.Barrier(4), []

    def worker():
        with app.app_context():
            try:
                barrier.wait()
                payouts.sync(now_utc())
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with app.app_context():
        payout = _payout(po["id"])
        assert db.session.scalar(select(func.count()).select_from(Payout).where(
            Payout.stripe_payout_id == po["id"])) == 1
        assert sorted(ln.balance_transaction_id for ln in payout.lines) == sorted(sc.txns)
        assert payouts.difference(payout, payouts.totals([payout.id])[payout.id]) == 0
