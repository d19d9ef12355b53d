"""The facilitator's home in a real browser, on a phone: the panels count what is theirs, link to
where the work is done, fit the screen, and have no serious accessibility violations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from retreat.accounts import passwords
from retreat.clinical import safety
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests import followup_helpers as fh
from tests.e2e.helpers import PASSWORD, sign_in

pytestmark = pytest.mark.browser


def test_the_facilitator_home_on_a_phone(live_server, page):
    with live_server.app.app_context():
        end = now_utc().replace(microsecond=0) - timedelta(hours=30)
        mine, theirs = fh.setup(dosing_end=end), fh.setup(dosing_end=end)
        safety.raise_safety_alert(fh.confirmed(mine, name="Avery Alerted"), now=now_utc())
        safety.raise_safety_alert(fh.confirmed(theirs, name="Blake Elsewhere"), now=now_utc())
        mine.facilitator.email = "fern-home@example.com"
        mine.facilitator.password_hash = passwords.hash_password(PASSWORD)
        db.session.commit()
        email = mine.facilitator.email
    page.set_viewport_size({"width": 390, "height": 900})
    sign_in(page, live_server.url, email)
    page.goto(live_server.url + "/facilitator/")
    assert page.get_by_test_id("open-safety-alerts-count").inner_text() == "1"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    serious = [v for v in Axe().run(page).response["violations"] if v["impact"] in ("critical", "serious")]
    assert serious == [], [v["id"] for v in serious]
    page.get_by_role("link", name="Open the safety alerts").click()
    page.wait_for_url("**/facilitator/safety-alerts")
    expect(page.get_by_text("Avery Alerted")).to_be_visible()
    assert page.get_by_text("Blake Elsewhere").count() == 0
