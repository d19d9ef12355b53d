"""A guest books, reschedules and cancels a consult in a real browser; a facilitator edits availability.

Screenshots (desktop and mobile widths) go to /tmp/consult-*.png for a person to look at.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.consults import publishing
from retreat.extensions import db
from retreat.messaging import sealed
from retreat.models import Consultation, OutboxMessage
from tests.e2e.helpers import open_menu
from tests.unit.test_consult_support import SETTINGS

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 390, "height": 844}
PASSWORD = "a-long-password-1"


def _facilitator(app, email="fern@example.com"):
    with app.app_context():
        fac = accounts.create_user(email=email, name="Fern Facilitator", role="facilitator", password=PASSWORD,
                                   verified=True, tz="America/Denver")
        publishing.update_settings(fac, tz="America/Denver", **{**SETTINGS, "min_notice_minutes": 60})
        publishing.set_weekly_rules(fac, {d: "09:00-12:00, 13:00-17:00" for d in range(5)})
        db.session.commit()
        return fac.id


def _shots(page, name):
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=f"/tmp/consult-{name}-desktop.png", full_page=True)
    page.set_viewport_size(MOBILE)
    page.screenshot(path=f"/tmp/consult-{name}-mobile.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def test_guest_books_reschedules_and_cancels(live_server, browser):
    app = live_server.app
    _facilitator(app)
    context = browser.new_context(timezone_id="Asia/Kolkata", locale="en-IN", viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(live_server.url + "/consult/")
        # The script noticed the browser's zone and reloaded the page with it.
        page.wait_for_url(re.compile(r"tz=Asia(/|%2F)Kolkata"))
        expect(page.get_by_text("Times in Asia/Kolkata")).to_be_visible()
        _shots(page, "booking")

        page.locator("a.day").nth(2).click()  # a day at least two days ahead: outside the change cutoff
        page.locator("a.time-slot").first.click()
        page.get_by_role("heading", name="Your details").wait_for()
        page.get_by_label("Your name").fill("Asha Guest")
        page.get_by_label("Email").fill("asha@example.com")
        assert page.get_by_label("Your time zone").input_value() == "Asia/Kolkata"
        page.get_by_label("What brings you to us?").fill("I would like to understand how the retreats work.")
        page.get_by_label("How did you hear about us?").select_option("A podcast, article or book")
        page.locator("input[name=q_pregnancy][value=no]").check()
        _shots(page, "details")
        page.get_by_role("button", name="Book my free call").click()
        page.get_by_text("You are booked").wait_for()
        expect(page.get_by_role("link", name="Add to my calendar (.ics)")).to_be_visible()
        with app.app_context():
            consult = db.session.scalar(select(Consultation))
            first_start = consult.start_at
            confirmation = db.session.scalar(select(OutboxMessage).where(
                OutboxMessage.template == "consult_confirmation"))
            manage_url = sealed.context_of(confirmation)["manage_url"]
        assert manage_url.startswith(live_server.url)

        page.goto(manage_url)  # as if from the email
        _shots(page, "manage")
        page.get_by_role("link", name="Reschedule").click()
        page.get_by_role("heading", name="Choose a new time").wait_for()
        page.locator("a.day").last.click()
        page.locator("a.time-slot").last.click()
        page.get_by_role("button", name="Move my call").click()
        page.get_by_text("Your call has been moved").wait_for()

        page.get_by_role("link", name="Cancel this call").click()
        page.get_by_role("button", name="Yes, cancel my call").click()
        page.get_by_role("heading", name="Your consultation was cancelled").wait_for()

        with app.app_context():
            consult = db.session.scalar(select(Consultation))
            assert consult.status == "cancelled" and consult.sequence == 2 and consult.start_at != first_start
            templates = [m.template for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
            assert templates.count("consult_confirmation") == 2 and "consult_cancelled" in templates
        # The first link was replaced when the call moved.
        page.goto(manage_url)
        expect(page.get_by_text("replaced by a newer one")).to_be_visible()
    finally:
        context.close()


def test_facilitator_edits_weekly_hours_and_sees_the_preview(live_server, page):
    _facilitator(live_server.app)
    page.set_viewport_size(DESKTOP)
    page.goto(live_server.url + "/account/login")
    page.get_by_label("Email").fill("fern@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    open_menu(page, "Consults")
    page.get_by_role("link", name="Availability", exact=True).click()
    page.get_by_role("heading", name="Consult availability").wait_for()
    _shots(page, "availability")
    page.get_by_label("Saturday").fill("10:00-12:00")
    page.get_by_role("button", name="Save weekly hours").click()
    page.get_by_text("Weekly hours saved.").wait_for()
    assert page.get_by_label("Saturday").input_value() == "10:00-12:00"
    page.get_by_label("Monday").fill("nine to five")
    page.get_by_role("button", name="Save weekly hours").click()
    page.get_by_text("Monday: write hours like").wait_for()  # the refused form comes back with the message
