"""An admin creates a staff account and reads the audit log in a real browser (CSRF on)."""

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.extensions import db

pytestmark = pytest.mark.browser


def test_admin_creates_provider_and_finds_it_in_the_audit_log(live_server, page):
    with live_server.app.app_context():
        accounts.create_user(email="ada@example.com", name="Ada Admin", role="admin",
                             password="a-long-password-1", verified=True, tz="America/Denver")
        accounts.create_provider_organization("Mesa Clinic")
        db.session.commit()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(live_server.url + "/account/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")

    page.goto(live_server.url + "/admin/users/new")
    page.get_by_label("Full name").fill("Dr Rowan")
    page.get_by_label("Email").fill("rowan@example.com")
    page.get_by_label("Role").select_option("provider")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("A provider belongs to a provider organisation.")).to_be_visible()
    page.get_by_label("Provider organisation").select_option(label="Mesa Clinic")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Account created")).to_be_visible()
    assert len(page.get_by_test_id("one-time-password").inner_text()) >= 12

    page.goto(live_server.url + "/admin/audit?action=user.created")
    row = page.locator("tbody tr").first
    assert "user.created" in row.inner_text() and "ada@example.com" in row.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
