"""A staff member signs in through a real browser."""

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.extensions import db

pytestmark = pytest.mark.browser


def test_facilitator_signs_in_and_sees_portal(live_server, page):
    with live_server.app.app_context():
        accounts.create_user(email="fern@example.com", name="Fern", role="facilitator",
                             password="a-long-password-1", verified=True, tz="America/Denver")
        db.session.commit()
    page.goto(live_server.url + "/account/login")
    page.get_by_label("Email").fill("fern@example.com")
    page.get_by_label("Password").fill("wrong-password-here")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("do not match")).to_be_visible()
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/facilitator/")
    expect(page.get_by_role("heading", name="Facilitator dashboard")).to_be_visible()
