"""Finance runs a Stripe reconciliation in a real browser: the run is queued, the scheduler's job
does it while the page polls its progress, and a payment whose webhook never arrived is repaired
with one click."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from retreat import scheduler
from retreat.accounts import users as accounts
from retreat.cohorts import enrollment
from retreat.extensions import db
from retreat.finance.reconciliation_models import ReconciliationRun
from retreat.payments import gateway
from retreat.payments.models import LedgerEntry
from retreat.timeutil import now_utc, to_local
from tests import payments_helpers as ph

pytestmark = pytest.mark.browser


def test_finance_runs_a_reconciliation_and_repairs_a_missed_payment(live_server, page, localstripe):
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        # no webhook reaches the app in this test: the payment below is "missed"
        gateway.register_localstripe_webhook("http://127.0.0.1:9/unused", hook_id="live-server")
        accounts.create_user(email="fin@example.com", name="Fran Finance", role="finance",
                             password="a-long-password-1", verified=True, tz="America/Denver")
        person = accounts.create_user(email="ria@example.com", name="Ria", role="participant",
                                      password="a-long-password-1", verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=450000, deposit_minor=50000, title="Winter cohort")
        enr = enrollment.apply(c, person, now=now_utc())
        db.session.commit()
        enr_id = enr.id
        _, pi = ph.start_and_confirm(enr)
        db.session.remove()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # the progress script must not fail
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and "favicon" not in r.url else None)
    page.goto(live_server.url + "/account/login")
    page.get_by_label("Email").fill("fin@example.com")
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.get_by_role("link", name="Reconciliation").click()
    page.wait_for_url("**/finance/reconciliation")
    page.get_by_label("From").fill(to_local(now_utc(), "America/Denver").date().isoformat())
    page.get_by_role("button", name="Run reconciliation").click()
    page.wait_for_url("**/finance/reconciliation/runs/*")
    expect(page.get_by_text("is queued")).to_be_visible()
    assert page.get_by_test_id("run-status").inner_text() == "queued"

    # the scheduler's job picks the queued run up; the page notices by itself and shows the report
    assert scheduler.run_job(app, scheduler.registered_jobs()["finance.reconcile_queued"])
    page.get_by_role("heading", name="Report").wait_for()
    assert page.get_by_test_id("run-status").inner_text() == "done"
    page.screenshot(path="/tmp/reconciliation-report.png", full_page=True)
    row = page.locator(f"tr[data-key='charge:{pi['id']}']")
    assert "$500.00" in row.inner_text() and f"#{enr_id}" in row.inner_text()
    row.get_by_role("button", name="Repair").click()
    page.wait_for_load_state()
    expect(page.get_by_text("is now in the ledger")).to_be_visible()
    assert "repaired" in page.locator(f"tr[data-key='charge:{pi['id']}']").inner_text()
    page.screenshot(path="/tmp/reconciliation-repaired.png", full_page=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.stripe_object_id == pi["id"])) == 1
        db.session.remove()

    # a second run starts where the first stopped; comparing the two shows the payment resolved
    page.get_by_role("link", name="All runs").click()
    page.get_by_role("button", name="Run reconciliation").click()
    page.wait_for_url("**/finance/reconciliation/runs/*")
    assert scheduler.run_job(app, scheduler.registered_jobs()["finance.reconcile_queued"])
    page.get_by_role("heading", name="Report").wait_for()
    with app.app_context():
        first, second = db.session.scalars(select(ReconciliationRun.id).order_by(ReconciliationRun.id)).all()
        db.session.remove()
    page.get_by_role("link", name="All runs").click()
    page.locator(f"input[name=a][value='{first}']").check()
    page.locator(f"input[name=b][value='{second}']").check()
    page.screenshot(path="/tmp/reconciliation-runs.png", full_page=True)
    page.get_by_role("button", name="Compare A with B").click()
    page.wait_for_url("**/finance/reconciliation/compare?*")
    resolved = page.locator("section", has=page.get_by_role("heading", name="Resolved (1)"))
    assert f"charge:{pi['id']}" in resolved.inner_text() and "Matched" in resolved.inner_text()
    page.screenshot(path="/tmp/reconciliation-compare.png", full_page=True)
    assert errors == []
