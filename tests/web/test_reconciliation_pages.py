"""Finance console reconciliation: queue a run, the scheduler runs it, the report by category,
one-click repair (once), compare, and bad input refused with nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat import scheduler
from retreat.extensions import db
from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun
from retreat.models import AuditEvent
from retreat.payments.models import LedgerEntry
from retreat.timeutil import now_utc, to_local
from tests import factories
from tests import finance_helpers as fh
from tests import payments_helpers as ph
from tests.conftest import signed_in


@pytest.fixture()
def finance(app, db):
    user = factories.user("finance", password=None, tz="America/Denver")
    db.session.commit()
    return signed_in(app, user)


def _runs() -> int:
    return db.session.scalar(select(func.count()).select_from(ReconciliationRun))


def _today():
    return to_local(now_utc(), "America/Denver").date()


def _text(r) -> str:
    return r.get_data(as_text=True)


def test_finance_queues_a_run_the_scheduler_runs_it_and_a_missed_payment_is_repaired_once(db, stripe_app, finance):
    c = ph.cohort(capacity=3, deposit_minor=45000)
    enr = ph.applicant(c)
    db.session.commit()
    _, pi = ph.start_and_confirm(enr)  # paid; the webhook never arrives

    page = finance.get("/finance/reconciliation")
    assert page.status_code == 200 and "Run reconciliation" in _text(page) and "No run yet" in _text(page)
    today = _today().isoformat()
    r = finance.post("/finance/reconciliation/runs", data={"since": today, "until": today})
    assert r.status_code == 302
    run = db.session.scalars(select(ReconciliationRun)).one()
    assert r.headers["Location"].endswith(f"/finance/reconciliation/runs/{run.id}")
    again = finance.post("/finance/reconciliation/runs", data={"since": today}, follow_redirects=True)
    assert "already queued: no second run was queued" in _text(again) and _runs() == 1

    queued = finance.get(f"/finance/reconciliation/runs/{run.id}")
    assert "queued" in _text(queued) and "js/reconcile_progress.js" in _text(queued)
    progress = finance.get(f"/finance/reconciliation/runs/{run.id}/progress.json").get_json()
    assert progress["status"] == "queued" and progress["counts"] is None

    assert scheduler.registered_jobs()["finance.reconcile_queued"].func(now_utc()) == 1
    progress = finance.get(f"/finance/reconciliation/runs/{run.id}/progress.json").get_json()
    assert progress["status"] == "done" and progress["done"] == progress["total"] > 0
    assert progress["counts"]["missing_in_ledger"] >= 1

    item = db.session.scalars(select(ReconciliationItem).where(
        ReconciliationItem.run_id == run.id, ReconciliationItem.match_key == f"charge:{pi['id']}")).one()
    report = _text(finance.get(f"/finance/reconciliation/runs/{run.id}?category=missing_in_ledger"))
    row = report.split(f'data-testid="item-{item.id}"')[1].split("</tr>")[0]
    assert "$450.00" in row and f"#{enr.id}" in row and "Repair" in row and "reconcile_progress.js" not in report

    done = finance.post(f"/finance/reconciliation/items/{item.id}/repair", follow_redirects=True)
    assert done.status_code == 200 and "is now in the ledger" in _text(done)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.stripe_object_id == pi["id"])) == 1
    twice = finance.post(f"/finance/reconciliation/items/{item.id}/repair")
    assert twice.status_code == 409 and "already repaired" in _text(twice)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.stripe_object_id == pi["id"])) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "finance.reconciliation_repaired")) == 1


def test_what_cannot_be_repaired_is_refused_with_a_message(db, stripe_app, finance):
    c = fh.cohort(starts_at=now_utc() + timedelta(days=100), balance_due_on=(now_utc() + timedelta(days=80)).date())
    fh.seated(c, at=now_utc())  # a ledger charge Stripe never saw
    db.session.commit()
    today = _today().isoformat()
    finance.post("/finance/reconciliation/runs", data={"since": today})
    scheduler.registered_jobs()["finance.reconcile_queued"].func(now_utc())
    run = db.session.scalars(select(ReconciliationRun)).one()
    item = db.session.scalars(select(ReconciliationItem).where(
        ReconciliationItem.run_id == run.id, ReconciliationItem.category == "missing_in_stripe")).first()
    assert item is not None
    page = _text(finance.get(f"/finance/reconciliation/runs/{run.id}?category=missing_in_stripe"))
    assert "In the ledger, but Stripe has no such object." in page
    r = finance.post(f"/finance/reconciliation/items/{item.id}/repair")
    assert r.status_code == 409 and "append-only" in _text(r)
    assert finance.post("/finance/reconciliation/items/999999/repair").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "finance.reconciliation_repaired")) == 0


@pytest.mark.parametrize("form, message", [
    ({"since": "2026-03-10", "until": "2026-03-01"}, "The end date is before the start date."),
    ({"since": "10/03/2026"}, "Enter a date as YYYY-MM-DD"),
    ({"since": "2026-02-30"}, "Enter a date as YYYY-MM-DD"),
    ({"since": "2099-01-01"}, "The start date is in the future"),
    ({"since": "2999-01-01"}, "Enter a date between 2000 and 2100."),
])
def test_bad_dates_are_refused_and_queue_nothing(db, finance, form, message):
    r = finance.post("/finance/reconciliation/runs", data=form)
    assert r.status_code == 422 and message in _text(r)
    assert _runs() == 0


def test_compare_two_runs_and_bad_compare_requests(db, stripe_app, finance):
    today = _today().isoformat()
    ids = []
    for _ in range(2):
        finance.post("/finance/reconciliation/runs", data={"since": today})
        scheduler.registered_jobs()["finance.reconcile_queued"].func(now_utc())
        ids.append(db.session.scalar(select(func.max(ReconciliationRun.id))))
        if not ids[1:]:  # a ledger charge Stripe does not know appears between the runs
            c = fh.cohort(starts_at=now_utc() + timedelta(days=100),
                          balance_due_on=(now_utc() + timedelta(days=80)).date())
            fh.seated(c, at=now_utc())
            db.session.commit()
    listing = _text(finance.get("/finance/reconciliation"))
    assert f"#{ids[0]}" in listing and f"#{ids[1]}" in listing and "Compare A with B" in listing
    r = finance.get(f"/finance/reconciliation/compare?a={ids[0]}&b={ids[1]}")
    body = _text(r)
    assert r.status_code == 200 and "Appeared (1)" in body and "charge:pi_test_" in body
    unknown = finance.get(f"/finance/reconciliation/compare?a={ids[0]}&b=999999")
    assert unknown.status_code == 404 and "no reconciliation run #999999" in _text(unknown)
    assert finance.get("/finance/reconciliation/compare?a=x&b=1").status_code == 400
    assert finance.get("/finance/reconciliation/compare?a=1").status_code == 400
    same = finance.get(f"/finance/reconciliation/compare?a={ids[0]}&b={ids[0]}")
    assert same.status_code == 422 and "two different runs" in _text(same)
    assert finance.get("/finance/reconciliation/runs/999999").status_code == 404
    assert finance.get(f"/finance/reconciliation/runs/{ids[0]}?category=nope").status_code == 400


@pytest.mark.parametrize("role", ["participant", "facilitator", "provider"])
def test_only_finance_reaches_reconciliation(app, db, role):
    other = signed_in(app, factories.user(role, password=None))
    db.session.commit()
    assert other.get("/finance/reconciliation").status_code == 403
    assert other.post("/finance/reconciliation/runs", data={}).status_code == 403
    assert _runs() == 0
