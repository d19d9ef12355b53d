"""A participant applies to a cohort with a screening fee in a real browser, at 1280 and 390 px:
the apply page and the checkout say plainly what the fee is (amount, credited against the price,
refunded in full if not cleared, kept on withdrawal); the fee is paid by card with Stripe.js from
localstripe, whose signed webhook reaches the live server; the application then counts as
submitted. axe finds no serious or critical violation. Screenshots go to /tmp/shots-money2/."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments import gateway, ledger
from tests import payments_helpers as ph
from tests.e2e.helpers import PASSWORD, sign_in
from tests.e2e.test_finance_refund_browser import _axe
from tests.e2e.test_pay_deposit_browser import _fill_card

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-money2")
TERMS = "If the medical provider does not clear you, it is refunded in full. If you withdraw, it is kept."


@pytest.mark.parametrize("width", [1280, 390])
def test_participant_applies_and_pays_the_screening_fee(live_server, page, localstripe, width):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    email = f"fee{width}@example.com"
    with app.app_context():
        gateway.register_localstripe_webhook(f"{live_server.url}/webhooks/stripe", hook_id="live-server")
        person = accounts.create_user(email=email, name="Jo Fee", role="participant", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=450000, deposit_minor=50000, screening_fee_minor=15000, title="Spring cohort")
        db.session.commit()
        cohort_id, person_id = c.id, person.id
    findings: list[str] = []
    sign_in(page, live_server.url, email)
    page.goto(f"{live_server.url}/me/cohorts/{cohort_id}/apply")
    terms = page.get_by_test_id("screening-fee-terms")
    expect(terms).to_contain_text("$150.00")
    expect(terms).to_contain_text("credited against the price")
    expect(terms).to_contain_text(TERMS)
    page.screenshot(path=str(SHOTS / f"fee-apply-{width}.png"), full_page=True)
    _axe(page, findings)
    page.get_by_label("What draws you to this retreat?").fill("To meet my grief with company.")
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Continue to the screening fee").click()
    page.wait_for_url("**/me/enrollments/*")
    card = page.get_by_test_id("screening-fee")
    expect(card).to_contain_text("your application is not submitted yet")
    expect(card).to_contain_text(TERMS)
    page.screenshot(path=str(SHOTS / f"fee-enrollment-due-{width}.png"), full_page=True)
    _axe(page, findings)
    page.get_by_role("button", name="Pay the screening fee $150.00").click()
    page.wait_for_url("**/checkout/**")
    expect(page.get_by_role("heading", name="Pay screening fee: $150.00")).to_be_visible()
    expect(page.get_by_test_id("screening-fee-terms")).to_contain_text(TERMS)
    page.locator("#card-element input[placeholder=number]").wait_for()
    _fill_card(page, ph.VISA)
    page.screenshot(path=str(SHOTS / f"fee-checkout-{width}.png"), full_page=True)
    _axe(page, findings)
    page.get_by_role("button", name="Pay $150.00").click()
    page.wait_for_url("**/return/**")
    expect(page.get_by_text("Your screening fee is paid and your application is submitted")).to_be_visible()
    page.screenshot(path=str(SHOTS / f"fee-return-{width}.png"), full_page=True)
    with app.app_context():
        enr = db.session.scalar(select(Enrollment).where(Enrollment.participant_id == person_id))
        enr_id = enr.id
        deadline = time.monotonic() + 10  # localstripe's webhook arrives about a second later
        from retreat.payments.models import StripeEvent

        while time.monotonic() < deadline and not db.session.query(StripeEvent).count():
            db.session.rollback()
            time.sleep(0.2)
        assert ledger.paid(enr_id) == 15000
        assert db.session.get(Enrollment, enr_id).screening_fee_paid_at is not None
    page.goto(f"{live_server.url}/me/enrollments/{enr_id}")
    expect(page.get_by_test_id("screening-fee-paid")).to_contain_text("your application is submitted")
    page.screenshot(path=str(SHOTS / f"fee-enrollment-paid-{width}.png"), full_page=True)
    _axe(page, findings)
    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    expect(page.get_by_test_id("screening-fee-policy")).to_be_visible()
    expect(page.get_by_role("button", name="Pay deposit $350.00")).to_be_visible()  # the fee is credited
    page.screenshot(path=str(SHOTS / f"fee-payments-{width}.png"), full_page=True)
    _axe(page, findings)
    assert not findings, findings
    with app.app_context():  # later live servers may reuse the port: stop deliveries here
        gateway.register_localstripe_webhook("http://127.0.0.1:9/unused", hook_id="live-server")
