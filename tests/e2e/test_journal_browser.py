"""A participant keeps a journal in a real browser (CSRF on): writes from a prompt, is stopped from
overwriting a newer version from a second tab, shares one entry, and the cohort's facilitator reads
it until it is unshared. The participant's progress chart renders as an accessible SVG."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.clinical import outcomes
from retreat.cohorts import enrollment
from retreat.cohorts.models import CohortSession
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e.helpers import PASSWORD, open_menu, sign_in

pytestmark = pytest.mark.browser


def test_journal_share_unshare_and_stale_edit_in_a_browser(live_server, page, browser):
    now = now_utc()
    with live_server.app.app_context():
        person = accounts.create_user(email="jo@example.com", name="Jo Participant", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        fac = accounts.create_user(email="fran@example.com", name="Fran Facilitator", role="facilitator",
                                   password=PASSWORD, verified=True, tz="America/Denver")
        cohort = fc.cohort(fc.retreat(title="Colorado Retreat"), title="May cohort", starts_at=now + timedelta(days=30))
        enr = enrollment.apply(cohort, person, now=now)
        start = cohort.starts_at + timedelta(days=1)
        db.session.add(CohortSession(cohort_id=cohort.id, kind="integration_circle", title="Circle", starts_at=start,
                                     ends_at=start + timedelta(hours=2), facilitator_id=fac.id))
        outcomes.record(enr, "phq9", "baseline", [2] * 9, now=now)
        outcomes.record(enr, "phq9", "post", [1] * 9, now=now)
        db.session.commit()
        ids = {"cohort": cohort.id, "enr": enr.id}

    sign_in(page, live_server.url, "jo@example.com")
    open_menu(page, "Integration")
    page.get_by_role("link", name="Journal", exact=True).click()
    page.get_by_role("link", name="Take three slow breaths. What changes, if anything?").click()
    assert page.locator("#realm").input_value() == "body"
    page.fill("#text", "My shoulders dropped. BROWSER-ENTRY-5521")
    page.get_by_role("button", name="Save entry").click()
    expect(page.get_by_text("Your entry is saved.")).to_be_visible()
    expect(page.get_by_text("BROWSER-ENTRY-5521")).to_be_visible()
    # Two tabs open the same entry; the second save is refused and shows both texts.
    page.get_by_role("link", name="Edit").click()
    other = page.context.new_page()
    other.goto(page.url)
    other.fill("#text", "Saved from the other tab")
    other.get_by_role("button", name="Save entry").click()
    page.fill("#text", "Typed in the first tab")
    page.get_by_role("button", name="Save entry").click()
    expect(page.get_by_text("changed in another tab or window").first).to_be_visible()
    expect(page.get_by_text("Saved from the other tab")).to_be_visible()
    assert page.locator("#text").input_value() == "Typed in the first tab"
    other.close()

    # Share it with the cohort's facilitators.
    page.goto(live_server.url + "/me/journal")
    page.get_by_role("link", name="Share with facilitators…").click()
    expect(page.get_by_text("Fran Facilitator")).to_be_visible()
    page.get_by_role("button", name="Share this entry").click()
    expect(page.get_by_text("Shared", exact=True)).to_be_visible()
    # The participant's progress chart.
    page.goto(live_server.url + "/me/outcomes")
    chart = page.get_by_role("img", name="PHQ-9 (depression): total score over time")
    expect(chart).to_be_visible()
    fac_ctx = browser.new_context(timezone_id="America/Denver", locale="en-US")
    fpage = fac_ctx.new_page()
    try:
        sign_in(fpage, live_server.url, "fran@example.com")
        fpage.goto(f"{live_server.url}/facilitator/cohorts/{ids['cohort']}/journal")
        fpage.get_by_role("link", name="Jo Participant").click()
        expect(fpage.get_by_text("Saved from the other tab")).to_be_visible()
        entry_url = live_server.url + fpage.get_by_role("link", name="Body").get_attribute("href")

        page.goto(live_server.url + "/me/journal")
        page.get_by_role("button", name="Stop sharing").click()
        expect(page.get_by_text("The entry is private again")).to_be_visible()
        response = fpage.goto(entry_url)
        assert response.status == 403
        assert "Saved from the other tab" not in fpage.content()
    finally:
        fac_ctx.close()
