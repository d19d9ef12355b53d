"""Time as people expect it in a real browser (issue #20 item 3): the clock follows the browser's
locale, and an in-person session shows the venue's time with the viewer's own beside it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from retreat.extensions import db
from tests import factories_cohorts as fc

pytestmark = pytest.mark.browser
START = datetime(2027, 1, 12, 16, 0, tzinfo=UTC)  # 09:00 in Denver, 17:00 in Berlin


@pytest.fixture()
def cohort_page(live_server):
    from retreat.cohorts.models import CohortSession

    with live_server.app.app_context():
        cohort = fc.cohort(timezone="America/Denver")
        db.session.add(CohortSession(cohort_id=cohort.id, kind="ifs", title="Opening circle", starts_at=START,
                                     ends_at=START.replace(hour=18), location="Main hall"))
        db.session.add(CohortSession(cohort_id=cohort.id, kind="integration_circle", title="Online circle",
                                     starts_at=START.replace(day=19), ends_at=START.replace(day=19, hour=17),
                                     video_url="https://video.example.com/room"))
        db.session.commit()
        return f"{live_server.url}/cohorts/{cohort.id}"


@pytest.mark.parametrize(("locale", "venue", "mine"), [
    ("de-DE", "09:00", "17:00"),
    ("en-US", "9:00 AM", "5:00 PM"),
])
def test_a_berlin_visitor_sees_the_venue_time_and_their_own_in_their_locale(browser, cohort_page, locale, venue, mine):
    context = browser.new_context(timezone_id="Europe/Berlin", locale=locale)
    page = context.new_page()
    page.goto(cohort_page)
    item = page.locator(".schedule li", has_text="Opening circle")
    venue_text = item.locator("time[data-venue-datetime]").inner_text()
    assert venue in venue_text and "venue time" in item.inner_text(), venue_text
    beside = item.locator("[data-viewer-time]")
    expect(beside).to_be_visible()
    assert mine in beside.inner_text() and "your time" in beside.inner_text()
    online = page.locator(".schedule li", has_text="Online circle").locator("time").inner_text()
    assert mine in online, online  # an online session: the visitor's own time only
    context.close()


def test_a_visitor_in_the_venues_zone_sees_one_time(browser, cohort_page):
    context = browser.new_context(timezone_id="America/Denver", locale="en-US")
    page = context.new_page()
    page.goto(cohort_page)
    item = page.locator(".schedule li", has_text="Opening circle")
    assert "9:00 AM" in item.locator("time[data-venue-datetime]").inner_text()
    assert item.locator("[data-viewer-time]").is_hidden()
    context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_both_times_fit_their_column_and_the_phone(browser, cohort_page, width):
    """The venue's time and the visitor's never run past the schedule's column or widen a phone page."""
    context = browser.new_context(timezone_id="Europe/Berlin", locale="de-DE", viewport={"width": width, "height": 844})
    page = context.new_page()
    page.goto(cohort_page)
    item = page.locator(".schedule li", has_text="Opening circle")
    expect(item.locator("[data-viewer-time]")).to_be_visible()
    overlap = item.evaluate("""li => {
      const when = li.querySelector('.schedule-when').getBoundingClientRect();
      const what = li.querySelector('.schedule-what').getBoundingClientRect();
      const side = when.right <= what.left + 1, below = when.bottom <= what.top + 1;
      return {fits: (side || below) && when.right <= li.getBoundingClientRect().right + 1};
    }""")
    assert overlap["fits"], item.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") == width
    context.close()
