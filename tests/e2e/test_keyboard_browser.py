"""Booking a consult with the keyboard alone (issue #20 item 8): Tab moves, Enter follows a link or
submits, Space checks, typing fills a field or picks a select's option, arrow keys move within a
radio group (the platform's own keys for it). No mouse click anywhere."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.extensions import db
from retreat.models import Consultation
from tests.e2e.test_consult_browser import DESKTOP, _facilitator

pytestmark = pytest.mark.browser


def tab_to(page, selector: str, limit: int = 120) -> None:
    """Press Tab until the focused element matches ``selector`` (fails if it never does)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_guest_books_a_consult_with_the_keyboard_only(live_server, browser):
    _facilitator(live_server.app)
    context = browser.new_context(timezone_id="Europe/Berlin", locale="de-DE", viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(live_server.url + "/consult/")
    page.wait_for_url(re.compile(r"tz=Europe(/|%2F)Berlin"))
    page.wait_for_load_state("networkidle")
    tab_to(page, "a.day")
    page.keyboard.press("Tab")  # the day after the first bookable one, outside any notice
    while not page.evaluate("document.activeElement.matches('a.day')"):
        page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "a.time-slot")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your details").wait_for()

    tab_to(page, "input[name=name]")
    page.keyboard.type("Kai Keyboard")
    tab_to(page, "input[name=email]")
    page.keyboard.type("kai@example.com")
    assert page.locator("select[name=timezone]").input_value() == "Europe/Berlin"
    tab_to(page, "textarea[name=reason]")
    page.keyboard.type("I want to know how the retreats work.")
    tab_to(page, "select[name=heard_from]")
    page.keyboard.type("A pod")  # type-ahead picks "A podcast, article or book"
    tab_to(page, "input[name=q_pregnancy]")
    for _ in range(4):
        if page.evaluate("document.activeElement.value") == "no":
            break
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    assert page.locator("input[name=q_pregnancy][value=no]").is_checked()
    tab_to(page, "button[type=submit]:is(.button)")
    assert "Book my free call" in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.get_by_text("You are booked").wait_for()
    with live_server.app.app_context():
        consult = db.session.scalar(select(Consultation))
        assert (consult.guest_name, consult.guest_email, consult.guest_tz) == ("Kai Keyboard", "kai@example.com",
                                                                              "Europe/Berlin")
    context.close()


def test_a_participant_fills_and_submits_the_intake_with_the_keyboard_only(live_server, browser):
    from datetime import timedelta

    from retreat.accounts import users as accounts
    from retreat.clinical.models import Intake
    from retreat.cohorts import enrollment
    from retreat.cohorts.models import CohortStatus, DepositTiming
    from retreat.timeutil import now_utc
    from tests import factories_cohorts as fc
    from tests.e2e.helpers import PASSWORD, sign_in

    now = now_utc()
    with live_server.app.app_context():
        org = accounts.create_provider_organization("Front Range Medical Partners")
        person = accounts.create_user(email="kai@example.com", name="Kai Keyboard", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        cohort = fc.cohort(fc.retreat(), status=CohortStatus.OPEN, deposit_timing=DepositTiming.AFTER_CLEARANCE,
                           starts_at=now + timedelta(days=60), provider_organization_id=org.id)
        enrollment.apply(cohort, person, now=now)
        db.session.commit()
    context = browser.new_context(timezone_id="America/Denver", locale="en-US", viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, live_server.url, "kai@example.com")
    page.goto(live_server.url + "/me/intake")
    tab_to(page, "main a.button[href*=intake]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    numbers = {"bp_systolic": "122", "bp_diastolic": "78", "height_cm": "170", "weight_kg": "68"}
    typed, checked = set(), set()
    for _ in range(400):
        page.keyboard.press("Tab")
        el = page.evaluate("(() => { const e = document.activeElement; return {tag: e.tagName, type: e.type || '',"
                           " id: e.id, name: e.name || '', text: (e.textContent || '').trim()}; })()")
        if el["tag"] == "BUTTON" and "Submit for medical review" in el["text"]:
            with page.expect_navigation():
                page.keyboard.press("Enter")
            break
        if el["tag"] == "TEXTAREA" or (el["tag"] == "INPUT" and el["type"] in ("text", "tel", "number")):
            if el["id"] not in typed:
                page.keyboard.type(numbers.get(el["id"], "+1 303 555 0100" if "phone" in el["id"] else "None"))
                typed.add(el["id"])
        elif el["tag"] == "INPUT" and el["type"] == "radio" and el["name"] not in checked:
            page.keyboard.press("Space")  # the group's first answer: "Not at all"
            checked.add(el["name"])
        elif el["tag"] == "INPUT" and el["type"] == "checkbox" and el["id"] == "copd":
            page.keyboard.press("Space")
    else:
        raise AssertionError("Tab never reached the submit button")
    expect(page.get_by_role("heading", name="Status: In medical review")).to_be_visible()
    assert len(checked) == 16 and {"bp_systolic", "medications"} <= typed
    with live_server.app.app_context():
        assert db.session.query(Intake).count() == 1
    context.close()
