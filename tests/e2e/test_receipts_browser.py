"""Receipts in a real browser (issue #18 items 2 and 10): the admin sets the legal details; a
participant pays a deposit through localstripe, opens the payments page, downloads the receipt
PDF (a Playwright download) and its text reads back with the number, legal name and amount;
finance opens the same receipt and the statement. axe finds no serious violation on the pages.
Screenshots go to /tmp/shots-invoices/."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.payments import documents
from tests import payments_helpers as ph
from tests.e2e.helpers import sign_in, sign_out
from tests.e2e.test_pay_deposit_browser import _fill_card

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-invoices")
SERIOUS = ("serious", "critical")


def _axe(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    return [f"{v['id']} ({v['impact']}) {v['nodes'][0]['target']}" for v in Axe().run(page).response["violations"]
            if v["impact"] in SERIOUS]


def _pdf_text(download) -> str:
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


def test_participant_downloads_the_receipt_pdf_and_finance_sees_it(live_server, browser, localstripe):
    SHOTS.mkdir(exist_ok=True)
    app = live_server.app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        for email, role in (("ada@example.com", "admin"), ("fin@example.com", "finance"),
                            ("pat@example.com", "participant")):
            accounts.create_user(email=email, name=email.split("@")[0].title(), role=role,
                                 password="a-long-password-1", verified=True, tz="America/Denver")
        c = ph.cohort(price_minor=450000, deposit_minor=50000, title="Autumn cohort")
        from retreat.cohorts import enrollment
        from retreat.timeutil import now_utc

        enr_id = enrollment.apply(c, accounts.get_by_email("pat@example.com"), now=now_utc()).id
        db.session.commit()
    context = browser.new_context(timezone_id="America/Denver", locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    findings: list[str] = []

    # The admin sets the practice's legal details.
    sign_in(page, live_server.url, "ada@example.com")
    page.goto(f"{live_server.url}/admin/settings/legal")
    page.get_by_label("Legal name").fill("Mountain Stillness Retreats LLC")
    page.get_by_label("Address").fill("12 Aspen Way\nBoulder, CO 80302\nUSA")
    page.get_by_label("Tax id").fill("EIN 12-3456789")
    page.get_by_label("Invoice footer").fill("Thank you for your trust.")
    page.get_by_role("button", name="Save legal details").click()
    expect(page.get_by_text("Legal details saved")).to_be_visible()
    findings += [f"admin legal: {f}" for f in _axe(page)]
    page.screenshot(path=str(SHOTS / "admin-legal-settings.png"), full_page=True)
    sign_out(page)

    # The participant pays the deposit; the return page records it and the receipt is issued.
    sign_in(page, live_server.url, "pat@example.com")
    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    page.get_by_role("button", name="Pay deposit $500.00").click()
    page.wait_for_url("**/checkout/**")
    page.locator("#card-element input[placeholder=number]").wait_for()
    _fill_card(page, ph.VISA)
    page.get_by_role("button", name="Pay $500.00").click()
    page.wait_for_url("**/return/**")
    with app.app_context():
        doc = documents.of_enrollment(enr_id)[0]
        number, doc_id = doc.number, doc.id
    page.goto(f"{live_server.url}/me/payments/{enr_id}")
    section = page.locator("[data-testid=documents]")
    assert number in section.inner_text()
    findings += [f"participant payments: {f}" for f in _axe(page)]
    page.screenshot(path=str(SHOTS / "participant-payments.png"), full_page=True)
    with page.expect_download() as info:
        page.locator(f"[data-testid='pdf-{number}']").click()
    text = _pdf_text(info.value)
    assert number in text and "Mountain Stillness Retreats LLC" in text and "$500.00" in text
    assert info.value.suggested_filename == f"{number}.pdf"
    page.get_by_role("link", name=number, exact=True).click()
    expect(page.get_by_role("heading", name=f"Receipt {number}")).to_be_visible()
    findings += [f"participant receipt: {f}" for f in _axe(page)]
    page.screenshot(path=str(SHOTS / "participant-receipt.png"), full_page=True)
    page.goto(f"{live_server.url}/me/payments/{enr_id}/statement")
    assert page.locator("[data-testid=st-balance]").inner_text() == "$4,000.00"
    findings += [f"participant statement: {f}" for f in _axe(page)]
    page.screenshot(path=str(SHOTS / "participant-statement.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_test_id("download-pdf").click()
    statement = _pdf_text(info.value)
    assert "Statement" in statement and "$4,000.00" in statement and number in statement
    sign_out(page)

    # Finance reads the same receipt from the enrollment's ledger page.
    sign_in(page, live_server.url, "fin@example.com")
    page.goto(f"{live_server.url}/finance/payments/enrollments/{enr_id}")
    page.get_by_role("link", name=number, exact=True).click()
    expect(page.get_by_role("heading", name=f"Receipt {number}")).to_be_visible()
    findings += [f"finance receipt: {f}" for f in _axe(page)]
    page.screenshot(path=str(SHOTS / "finance-receipt.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_test_id("download-pdf").click()
    assert number in _pdf_text(info.value)
    assert page.request.get(f"{live_server.url}/finance/documents/{doc_id}.pdf").ok
    context.close()
    assert not findings, "\n".join(findings)
