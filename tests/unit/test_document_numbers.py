"""Receipt and credit-note numbers (issue #18 items 2 and 10): issued when the ledger records a
charge or refund, never on view; gapless and unique per series, also under 20 concurrent payments
on PostgreSQL; a rolled-back transaction consumes no number; replays issue nothing new; the
practice's legal details are snapshot on the document; the backfill numbers history in order."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.cohorts.models import EnrollmentStatus, SeatState
from retreat.extensions import db as _db
from retreat.payments import checkout, documents, ledger, legal
from retreat.payments.document_models import DocumentCounter, DocumentImmutable, FinanceDocument
from retreat.payments.models import LedgerEntry, LedgerType, Payment, PaymentKind
from tests import factories
from tests import factories_cohorts as fc
from tests import finance_helpers as fh
from tests.conftest import is_postgres

NOW = fh.NOW
PAYMENTS = 20


def _numbers(series="R"):
    return list(_db.session.scalars(select(FinanceDocument.seq).where(FinanceDocument.series == series)
                                    .order_by(FinanceDocument.seq)))


def _set_legal(name="Mountain Stillness Retreats LLC"):
    admin = factories.user("admin", password=None)
    legal.save(legal.validate(legal_name=name, address="12 Aspen Way\nBoulder, CO 80302", tax_id="EIN 12-3456789",
                              footer="Thank you."), actor=admin)


def test_a_charge_gets_a_receipt_and_a_refund_a_credit_note_with_the_legal_details_as_issued(db):
    _set_legal()
    c = fh.cohort()
    enr = fh.seated(c)
    p = fh.pay(enr, 100000, at=NOW + timedelta(days=1))
    receipts = documents.of_enrollment(enr.id)
    assert [d.number for d in receipts] == ["R-2026-000001", "R-2026-000002"]
    assert receipts[1].payment_id == p.id and receipts[1].amount_minor == 100000 and receipts[1].currency == "USD"
    assert receipts[1].legal_name == "Mountain Stillness Retreats LLC" and "Boulder" in receipts[1].legal_address
    _set_legal("Renamed Practice Inc")
    fh.entry(enr, LedgerType.REFUND, -25000, payment=p, at=NOW + timedelta(days=2))
    fh.entry(enr, LedgerType.FEE, -300, payment=p)  # fees, discounts, adjustments: no document
    docs = documents.of_enrollment(enr.id)
    assert [d.number for d in docs] == ["R-2026-000001", "R-2026-000002", "C-2026-000001"]
    assert docs[2].kind == "credit_note" and docs[2].amount_minor == 25000
    assert docs[2].legal_name == "Renamed Practice Inc"
    assert docs[0].legal_name == "Mountain Stillness Retreats LLC"  # the snapshot did not move


def test_a_replayed_charge_issues_nothing_and_viewing_numbers_nothing(db):
    c = fh.cohort()
    enr = fh.seated(c)
    entry = ledger.find(LedgerType.CHARGE, f"pi_test_{enr.id}") or _db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.enrollment_id == enr.id)).first()
    again, created = ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=entry.amount_minor,
                                   currency="USD", object_id=entry.stripe_object_id, payment_id=entry.payment_id,
                                   now=NOW)
    assert created is False
    assert documents.issue(again, now=NOW).id == documents.for_entry(entry.id).id  # the same document
    assert _db.session.scalar(select(func.count()).select_from(FinanceDocument)
                              .where(FinanceDocument.enrollment_id == enr.id)) == 1


def test_documents_never_change(db):
    enr = fh.seated(fh.cohort())
    doc = documents.of_enrollment(enr.id)[0]
    doc.amount_minor = 1
    with pytest.raises(DocumentImmutable):
        _db.session.flush()
    _db.session.rollback()


def test_issue_missing_numbers_history_in_ledger_order_once(db):
    c = fh.cohort()
    enr = fc.applicant(c, now=NOW)
    cur = "USD"
    ps = []
    for i in range(3):
        p = Payment(enrollment_id=enr.id, kind="balance", attempt=i + 1, amount_minor=1000 * (i + 1), currency=cur,
                    status="succeeded", idempotency_key=f"hist-{enr.id}-{i}", stripe_payment_intent_id=f"pi_hist_{enr.id}_{i}")
        _db.session.add(p)
        _db.session.flush()
        ps.append(p)
    # Written the way history was, before documents existed: straight rows, recorded out of id order.
    for p, days in zip(ps, (3, 1, 2), strict=True):
        _db.session.add(LedgerEntry(enrollment_id=enr.id, entry_type="charge", amount_minor=p.amount_minor,
                                    currency=cur, stripe_object_id=p.stripe_payment_intent_id, payment_id=p.id,
                                    created_at=NOW + timedelta(days=days)))
    _db.session.flush()
    assert documents.issue_missing(now=NOW + timedelta(days=5)) == 3
    by_payment = {d.payment_id: d.seq for d in documents.of_enrollment(enr.id)}
    assert [by_payment[p.id] for p in ps] == [3, 1, 2]  # in the order the ledger recorded them
    assert documents.issue_missing(now=NOW + timedelta(days=6)) == 0


pg_only = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")


def _pending_balances(n: int) -> list[int]:
    """``n`` confirmed enrollments in ``n`` cohorts (so that only the counter serialises them), each
    with a pending balance payment of the whole price. Returns the payment ids."""
    ids = []
    for _ in range(n):
        c = fh.cohort()
        enr = fc.bare_enrollment(c, now=NOW)
        enr.seat, enr.status = SeatState.CONFIRMED.value, EnrollmentStatus.DEPOSIT_PAID.value
        p = Payment(enrollment_id=enr.id, kind=PaymentKind.BALANCE.value, attempt=1, amount_minor=c.price_minor,
                    currency="USD", status="pending", idempotency_key=f"balance-{enr.id}-1")
        _db.session.add(p)
        _db.session.flush()
        ids.append(p.id)
    return ids


@pg_only
def test_twenty_concurrent_payments_get_numbers_one_to_twenty(committing_app):
    app = committing_app
    with app.app_context():
        ids = _pending_balances(PAYMENTS)
        _db.session.add_all([DocumentCounter(series="R", last_number=0), DocumentCounter(series="C", last_number=0)])
        _db.session.commit()  # the counters exist, as the migration seeds them: only the row lock serialises
    barrier = threading.Barrier(PAYMENTS)
    errors: list[BaseException] = []

    def worker(pid):
        with app.app_context():
            try:
                pi = {"id": f"pi_conc_{pid}", "status": "succeeded", "amount": 450000, "currency": "usd",
                      "metadata": {"payment": str(pid)}}
                barrier.wait()
                checkout.sync_payment_intent(pi, now=NOW)
                _db.session.commit()
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)
                _db.session.rollback()
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(pid,)) for pid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with app.app_context():
        assert _numbers("R") == list(range(1, PAYMENTS + 1))
        docs = _db.session.scalars(select(FinanceDocument)).all()
        assert sorted(d.payment_id for d in docs) == sorted(ids)  # one receipt per payment
        assert len({d.number for d in docs}) == PAYMENTS
        assert _db.session.scalar(select(DocumentCounter.last_number).where(DocumentCounter.series == "R")) == PAYMENTS


@pg_only
def test_a_rolled_back_payment_consumes_no_number(committing_app):
    app = committing_app
    with app.app_context():
        ids = _pending_balances(2)
        _db.session.commit()
        pi = {"id": "pi_rollback", "status": "succeeded", "amount": 450000, "currency": "usd",
              "metadata": {"payment": str(ids[0])}}
        checkout.sync_payment_intent(pi, now=NOW)
        assert _numbers("R") == [1]
        _db.session.rollback()  # e.g. a crash before the commit
        assert _numbers("R") == []
        checkout.sync_payment_intent({**pi, "id": "pi_second", "metadata": {"payment": str(ids[1])}}, now=NOW)
        _db.session.commit()
        assert _numbers("R") == [1]
        assert _db.session.scalar(select(FinanceDocument.payment_id)) == ids[1]


def test_the_cli_numbers_history_once(app, db):
    enr = fc.applicant(fh.cohort(), now=NOW)
    p = Payment(enrollment_id=enr.id, kind="balance", attempt=1, amount_minor=5000, currency="USD",
                status="succeeded", idempotency_key=f"cli-{enr.id}", stripe_payment_intent_id=f"pi_cli_{enr.id}")
    _db.session.add(p)
    _db.session.flush()
    _db.session.add(LedgerEntry(enrollment_id=enr.id, entry_type="charge", amount_minor=5000, currency="USD",
                                stripe_object_id=p.stripe_payment_intent_id, payment_id=p.id, created_at=NOW))
    _db.session.commit()
    runner = app.test_cli_runner()
    first = runner.invoke(args=["finance", "issue-missing-documents"])
    assert first.exit_code == 0 and "Issued 1 document(s)." in first.output, first.output
    doc = documents.for_payment(p.id)
    assert doc.seq == 1 and doc.number == f"R-{doc.issued_at.year}-000001"
    second = runner.invoke(args=["finance", "issue-missing-documents"])
    assert second.exit_code == 0 and "already has its document" in second.output
