"""The page chrome in a real browser (issue #20 items 1, 2 and 8).

On the demo seed, per role: the main menu is one row at 1280 px and sits behind its Menu button
at 390 px, where the keyboard alone opens it and reaches every link; long unbroken words never
widen a page; and axe-core (the local axe.min.js, no network) finds no serious or critical
violation on any page the crawl of tests/web/test_crawl.py reaches for the role, at 1280 px and at
a phone's 390x844.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.cli import demo
from retreat.extensions import db
from tests.conftest import login_as
from tests.e2e import helpers
from tests.web.test_crawl import HOMES, crawl

pytestmark = pytest.mark.browser
ROLES = ["participant", "facilitator", "provider", "finance", "admin"]
SERIOUS = ("serious", "critical")


@pytest.fixture()
def demo_server(live_server):
    with live_server.app.app_context():
        demo.seed()
        db.session.commit()
    return live_server


def _sign_in(browser, server, role, *, width=1280, locale="en-US"):
    context = browser.new_context(timezone_id="America/Denver", locale=locale, bypass_csp=True,
                                  viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    if role:
        helpers.sign_in(page, server.url, f"{role}@demo.retreat", demo.DEMO_PASSWORD)
    return context, page


def _menu_links(page):
    return page.locator("#main-menu a, #main-menu button[type=submit]")


def test_menu_is_one_row_wide_and_behind_a_button_on_a_phone(browser, demo_server):
    for role in ROLES:
        context, page = _sign_in(browser, demo_server, role)
        page.goto(demo_server.url + HOMES[role] + "/")
        tops = page.eval_on_selector_all("#main-menu > li", "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
        assert max(tops) - min(tops) < 16, (role, "menu wraps at 1280 px", tops)  # one row (baselines differ a little)
        assert page.locator(".nav-toggle").is_hidden()
        assert page.locator("#main-menu [aria-current=page]").count() == 1, role

        page.set_viewport_size({"width": 390, "height": 844})
        toggle = page.locator(".nav-toggle")
        expect(toggle).to_be_visible()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert page.locator("#main-menu").is_hidden()
        header_height = page.evaluate("document.querySelector('.header-inner').offsetHeight")
        assert header_height < 90, (role, header_height)  # brand and Menu button share one row
        # Keyboard only: Tab to the Menu button, Enter opens it, every group opens with Space,
        # and Tab reaches every link in document order; Escape closes and returns focus.
        page.locator("body").focus()
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('nav-toggle')"):
                break
        assert page.evaluate("document.activeElement.classList.contains('nav-toggle')"), role
        page.keyboard.press("Enter")
        expect(toggle.get_attribute("aria-expanded") == "true" and page.locator("#main-menu")).to_be_visible()
        expected = set(_menu_links(page).evaluate_all("els => els.map(e => e.textContent.trim())"))
        reached: set[str] = set()
        for _ in range(60):
            page.keyboard.press("Tab")
            focused = page.evaluate("[document.activeElement.className, document.activeElement.textContent.trim(),"
                                    " document.activeElement.getAttribute('aria-expanded'),"
                                    " !!document.activeElement.closest('#main-menu')]")
            cls, text, expanded, inside = focused
            if not inside:
                break
            if "nav-group-button" in cls and expanded == "false":
                page.keyboard.press(" ")
                assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "true"
            else:
                reached.add(text)
        assert expected <= reached, (role, expected - reached)
        page.keyboard.press("Escape")  # the first Escape closes the open group, the next the menu
        assert page.locator(".nav-group-button[aria-expanded=true]").count() == 0
        assert page.evaluate("document.activeElement.classList.contains('nav-group-button')")
        page.keyboard.press("Escape")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert page.evaluate("document.activeElement.classList.contains('nav-toggle')")
        context.close()


def test_without_javascript_every_menu_link_is_on_the_page(browser, demo_server):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    helpers.sign_in(page, demo_server.url, "facilitator@demo.retreat", demo.DEMO_PASSWORD)
    page.goto(demo_server.url + "/facilitator/")
    for name in ("Today", "Cohorts", "Clearance", "Safety alerts", "Consults", "Availability", "Outcomes"):
        expect(page.get_by_role("link", name=name, exact=True).first, name).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    context.close()


def test_a_long_unbroken_name_never_widens_the_roster_or_the_consults_pages(browser, demo_server):
    long_name = "A" * 200
    with demo_server.app.app_context():
        from retreat.accounts.models import User
        from retreat.consults.models import Consultation

        for user in db.session.query(User).filter(User.role == "participant").limit(3):
            user.name = long_name
        from datetime import timedelta

        from retreat.timeutil import now_utc

        facilitator = accounts.get_by_email("facilitator@demo.retreat")
        start = now_utc().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
        db.session.add(Consultation(calendar_uid="long-name@test", facilitator_id=facilitator.id, start_at=start,
                                    end_at=start + timedelta(minutes=30), blocked_start=start,
                                    blocked_end=start + timedelta(minutes=30), guest_name=long_name,
                                    guest_email="long@example.com", guest_tz="Europe/Berlin"))
        db.session.commit()
        from retreat.cohorts.models import Cohort

        cohort_id = db.session.query(Cohort.id).order_by(Cohort.id.desc()).first()[0]
    pages = ["/facilitator/consults", f"/facilitator/cohorts/{cohort_id}/roster"]
    context, page = _sign_in(browser, demo_server, "facilitator")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in pages:
            response = page.goto(demo_server.url + path)
            assert response.ok, path
            assert long_name in page.content(), path
            assert page.evaluate("document.documentElement.scrollWidth") == width, (path, width)
    context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_axe_finds_no_serious_violation_on_any_page_of_any_role(browser, demo_server, width):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    app = demo_server.app
    started = time.monotonic()
    findings: list[str] = []
    checked = 0
    for role in [None, *ROLES]:
        with app.app_context():
            user = accounts.get_by_email(f"{role}@demo.retreat") if role else None
            client = app.test_client()
            if user is not None:
                login_as(app, client, user)
                db.session.commit()
            seen = crawl(app, client, HOMES[role], per_endpoint=1)
        urls = [u for u, status in seen.items() if status == 200]
        context, page = _sign_in(browser, demo_server, role, width=width)
        for url in urls:
            if url.split("?", 1)[0].rsplit("/", 1)[-1].count("."):  # a download (a signed consent .txt ...)
                continue
            response = page.goto(demo_server.url + url)
            if response is None or "html" not in (response.headers.get("content-type") or ""):
                continue
            checked += 1
            for violation in axe.run(page).response["violations"]:
                if violation["impact"] in SERIOUS:
                    for node in violation["nodes"][:3]:
                        findings.append(f"{role or 'anonymous'} {url} at {width} px: {violation['id']} ({violation['impact']}) "
                                        f"{node['target']} {node['html'][:120]}")
        context.close()
    elapsed = time.monotonic() - started
    print(f"axe at {width} px: {checked} pages in {elapsed:.0f} s")
    assert checked >= 40
    assert not findings, "\n".join(findings)
