"""Reconciliation under concurrent clicks (real threads; PostgreSQL when TEST_DATABASE_URL is set):
four "Run reconciliation" clicks queue one run; two "Repair" clicks on one item record the
charge once and repair the item once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from retreat.core.errors import Conflict
from retreat.extensions import db as _db
from retreat.finance import reconciliation, reconciliation_queue, reconciliation_repair
from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun
from retreat.models import AuditEvent, User
from retreat.payments.models import LedgerEntry
from retreat.timeutil import now_utc
from tests import factories
from tests import payments_helpers as ph


def _threads(n, target):
    barrier = threading.Barrier(n)
    results = []
    lock = threading.Lock()

    def run(i):
        try:
            barrier.wait()
            out = target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            out = exc
        with lock:
            results.append(out)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_simultaneous_run_clicks_queue_one_run(committing_app):
    app = committing_app
    with app.app_context():
        user_id = factories.user("finance", password=None).id
        _db.session.commit()
    since = now_utc() - timedelta(days=1)

    def click(_):
        with app.app_context():
            try:
                run, created = reconciliation_queue.queue(since=since, until=None, now=now_utc(),
                                                    actor=_db.session.get(User, user_id))
                _db.session.commit()
                return run.id, created
            finally:
                _db.session.remove()

    results = _threads(4, click)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({run_id for run_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(ReconciliationRun)) == 1


def test_two_repair_clicks_record_the_missed_charge_once(committing_app, localstripe):
    app = committing_app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        user_id = factories.user("finance", password=None).id
        c = ph.cohort(capacity=2, deposit_minor=35000)
        enr = ph.applicant(c)
        _db.session.commit()
        _, pi = ph.start_and_confirm(enr)
        run = reconciliation.run(since=now_utc() - timedelta(minutes=2), now=now_utc())
        item_id = _db.session.scalar(select(ReconciliationItem.id).where(
            ReconciliationItem.run_id == run.id, ReconciliationItem.match_key == f"charge:{pi['id']}"))
        _db.session.remove()

    def click(_):
        with app.app_context():
            try:
                reconciliation_repair.repair(item_id, now=now_utc(), actor=_db.session.get(User, user_id))
                _db.session.commit()
                return "repaired"
            except Conflict as exc:
                _db.session.rollback()
                return exc.message
            finally:
                _db.session.remove()

    results = _threads(2, click)
    assert results.count("repaired") == 1, results
    assert any("already" in r for r in results if r != "repaired"), results
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.stripe_object_id == pi["id"])) == 1
        assert _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "finance.reconciliation_repaired")) == 1
