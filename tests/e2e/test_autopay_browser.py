"""Automatic installments in a real browser (issue #18 item 1): the participant chooses a plan with
"Charge my card automatically", reads the consent naming each date and amount, saves a 4242 card
with Stripe.js served by localstripe (a SetupIntent); the job runs with an injected clock at the
first due date and charges off-session; localstripe's signed webhook reaches the live server and
writes the ledger; the receipt PDF is downloaded and read back. Finance's home is looked at too.
Screenshots (1280 and 390 px wide) go to /tmp/shots-money-b/."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.payments import autopay_charges, checkout, documents, gateway, ledger
from retreat.payments.models import StripeEvent
from retreat.timeutil import human_date, now_utc
from tests import autopay_helpers as ah
from tests import payments_helpers as ph
from tests.e2e.helpers import sign_in, sign_out
from tests.e2e.test_pay_deposit_browser import _fill_card

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-money-b")


def _shots(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # sticky table heads are drawn where the window is
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_save_a_card_at_plan_choice_then_the_job_charges_on_the_due_date(live_server, browser, localstripe):
    SHOTS.mkdir(exist_ok=True)
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        gateway.register_localstripe_webhook(f"{live_server.url}/webhooks/stripe", hook_id="live-server")
        person = accounts.create_user(email="pat@example.com", name="Pat", role="participant",
                                      password="a-long-password-1", verified=True, tz="America/Denver")
        accounts.create_user(email="fin@example.com", name="Fin", role="finance", password="a-long-password-1",
                             verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=140000, deposit_minor=50000, title="Autumn cohort")
        from retreat.cohorts import enrollment

        enr = enrollment.apply(c, person, now=now_utc())
        db.session.commit()
        _, pi = ph.start_and_confirm(enr)
        checkout.sync_payment_intent(pi, now=now_utc())
        db.session.commit()
        enr_id, tz = enr.id, c.timezone
    context = browser.new_context(timezone_id="America/Denver", locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    sign_in(page, live_server.url, "pat@example.com")
    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    page.get_by_label("Number of payments").select_option("3")
    page.get_by_label("Charge my card automatically on each due date").check()
    _shots(page, "01-plan-choice")
    page.get_by_role("button", name="Set my plan").click()
    page.wait_for_url("**/autopay/**")
    with app.app_context():
        plan = checkout.current_installments(db.session.get(type(enr), enr_id))
        dues = [(i.id, i.due_on) for i in plan]
    consent = page.get_by_test_id("consent")
    expect(consent).to_contain_text("You authorise")
    for _, due in dues:
        expect(consent).to_contain_text(f"$300.00 on {human_date(due)}")
    page.locator("#card-element input[placeholder=number]").wait_for()
    # an empty card first: a clear message, nothing saved
    page.get_by_role("button", name="I agree: save my card").click()
    expect(page.locator("#card-errors")).to_have_text("Enter your card number, expiry date and CVC.")
    _fill_card(page, ah.VISA)
    _shots(page, "02-consent-and-card")
    page.get_by_role("button", name="I agree: save my card").click()
    page.wait_for_url(f"**/me/payments/{enr_id}")
    expect(page.get_by_text("Your card (Visa ending 4242) is saved")).to_be_visible()
    expect(page.get_by_test_id("autopay-status")).to_contain_text("Automatic payments on")
    _shots(page, "03-payments-autopay-on")

    # The scheduler's job at the first due date (injected clock, in the cohort's zone).
    with app.app_context():
        paid_before = ledger.paid(enr_id)
        outcomes = autopay_charges.charge_due(ah.at(dues[0][1], 9, tz))
        assert [o.status for o in outcomes] == ["succeeded"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and ledger.paid(enr_id) == paid_before:
            db.session.rollback()
            time.sleep(0.2)
        assert ledger.paid(enr_id) == paid_before + 30000  # written by localstripe's webhook
        assert db.session.query(StripeEvent).filter_by(event_type="payment_intent.succeeded").count() >= 1
        doc = [d for d in documents.of_enrollment(enr_id) if d.amount_minor == 30000][0]
        number = doc.number

    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    assert number in page.locator("[data-testid=documents]").inner_text()
    _shots(page, "04-payments-after-charge")
    with page.expect_download() as info:
        page.locator(f"[data-testid='pdf-{number}']").click()
    data = Path(info.value.path()).read_bytes()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert number in text and "$300.00" in text

    # Switching to paying by hand from the payments page.
    page.get_by_role("button", name="Switch to paying by hand").click()
    expect(page.get_by_text("Automatic payments are stopped")).to_be_visible()
    _shots(page, "05-paying-by-hand")
    sign_out(page)

    sign_in(page, live_server.url, "fin@example.com")
    page.goto(f"{live_server.url}/finance/")
    expect(page.get_by_text("Automatic installments to follow up")).to_be_visible()
    _shots(page, "06-finance-home")
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    with app.app_context():
        gateway.register_localstripe_webhook("http://127.0.0.1:9/unused", hook_id="live-server")


def test_a_declined_card_is_replaced_from_the_payments_page(live_server, browser, localstripe):
    """0341 saved at the plan choice; the job at the due date declines it; the payments page says so
    with the retry date; the person replaces the card (4242) and the next run charges it."""
    SHOTS.mkdir(exist_ok=True)
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        person = accounts.create_user(email="dee@example.com", name="Dee", role="participant",
                                      password="a-long-password-1", verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=140000, deposit_minor=50000, title="Winter cohort")
        from retreat.cohorts import enrollment

        enr = enrollment.apply(c, person, now=now_utc())
        db.session.commit()
        _, pi = ph.start_and_confirm(enr)
        checkout.sync_payment_intent(pi, now=now_utc())
        db.session.commit()
        enr_id, tz = enr.id, c.timezone
    context = browser.new_context(timezone_id="America/Denver", locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, "dee@example.com")
    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    page.get_by_label("Number of payments").select_option("2")
    page.get_by_label("Charge my card automatically on each due date").check()
    page.get_by_role("button", name="Set my plan").click()
    page.wait_for_url("**/autopay/**")
    page.locator("#card-element input[placeholder=number]").wait_for()
    _fill_card(page, ah.DECLINED)
    page.get_by_role("button", name="I agree: save my card").click()
    page.wait_for_url(f"**/me/payments/{enr_id}")
    expect(page.get_by_text("Your card (Visa ending 0341) is saved")).to_be_visible()
    with app.app_context():
        due = checkout.current_installments(db.session.get(type(enr), enr_id))[0].due_on
        assert [o.status for o in autopay_charges.charge_due(ah.at(due, 9, tz))] == ["failed"]
    page.reload()
    expect(page.get_by_text(f"we try again on {human_date(due + ah.timedelta(days=1))}")).to_be_visible()
    _shots(page, "07-declined")
    page.get_by_role("button", name="Replace the card").click()
    page.wait_for_url("**/autopay/**")
    page.locator("#card-element input[placeholder=number]").wait_for()
    _fill_card(page, ah.VISA)
    page.get_by_role("button", name="I agree: save my card").click()
    page.wait_for_url(f"**/me/payments/{enr_id}")
    expect(page.get_by_text("Your card (Visa ending 4242) is saved")).to_be_visible()
    with app.app_context():
        assert [o.status for o in autopay_charges.charge_due(ah.at(due, 15, tz))] == ["succeeded"]
    page.reload()
    expect(page.get_by_text("Charged automatically", exact=True)).to_be_visible()
    _shots(page, "08-replaced-and-charged")
    context.close()


def test_a_charge_needing_authentication_is_confirmed_on_the_pay_page(live_server, browser, localstripe):
    """The bank asks for 3-D Secure on the off-session charge: the emailed "confirm your payment"
    link is the pay page with that PaymentIntent, where the person authenticates; the ledger follows."""
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        person = accounts.create_user(email="kai@example.com", name="Kai", role="participant",
                                      password="a-long-password-1", verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=140000, deposit_minor=50000, title="Solstice cohort")
        from retreat.cohorts import enrollment

        enr = enrollment.apply(c, person, now=now_utc())
        db.session.commit()
        _, pi = ph.start_and_confirm(enr)
        checkout.sync_payment_intent(pi, now=now_utc())
        plan = checkout.choose_plan(enr, 2, now=now_utc(), actor=None)
        db.session.commit()
        m = ah.save_card(enr)
        pm = gateway.create_test_payment_method(ah.NEEDS_AUTH)  # a card whose bank asks later
        gateway.attach_payment_method(pm, m.stripe_customer_id)
        m.stripe_payment_method_id = pm
        db.session.commit()
        enr_id, paid_before = enr.id, ledger.paid(enr.id)
        [o] = autopay_charges.charge_due(ah.at(plan[0].due_on, 9, c.timezone))
        assert o.status == "requires_action"
        from retreat.models import OutboxMessage

        link = db.session.query(OutboxMessage).filter(OutboxMessage.template == "autopay_notice").all()[-1] \
            .context["confirm_url"]
    context = browser.new_context(timezone_id="America/Denver", locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, "kai@example.com")
    page.goto(link)
    expect(page.get_by_text("Your bank asks you to confirm this payment")).to_be_visible()
    _shots(page, "09-confirm-your-payment")
    page.get_by_role("button", name="Confirm the payment of $450.00").click()
    page.get_by_role("button", name="Complete authentication").click()  # localstripe's 3-D Secure prompt
    page.wait_for_url("**/return/**")
    with app.app_context():
        assert ledger.paid(enr_id) == paid_before + 45000  # the return page applied it
    expect(page.get_by_test_id("result")).to_contain_text("We received $450.00")
    context.close()
