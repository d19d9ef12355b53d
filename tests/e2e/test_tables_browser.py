"""Wide staff tables in a real browser (issue #20 item 2).

At 1280 px the roster, audit log, consults, outbox and finance tables fit without sideways
scrolling (low-priority columns fold into a per-row "More" disclosure), at 390 px their rows
stack as label: value, a 200-character unbroken name widens nothing, and a fitting table's head
row stays in view while the window scrolls (the card is no scroll box of its own).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from retreat.extensions import db
from tests.e2e.test_chrome_browser import _sign_in, demo_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
LONG = "B" * 200

FITS = """() => {
  const doc = document.documentElement.scrollWidth <= window.innerWidth;
  const wraps = [...document.querySelectorAll('.table-wrap')].filter(w => w.offsetParent !== null)
    .map(w => [w.scrollWidth, w.clientWidth]);
  return {doc, page: document.documentElement.scrollWidth, inner: window.innerWidth,
          tight: wraps.every(([s, c]) => s <= c + 1), wraps};
}"""


def _long_data(app):
    with app.app_context():
        from retreat.accounts import users as accounts
        from retreat.accounts.models import User
        from retreat.audit.models import AuditEvent
        from retreat.cohorts.models import Cohort
        from retreat.consults.models import Consultation
        from retreat.timeutil import now_utc

        for user in db.session.query(User).filter(User.role == "participant").limit(3):
            user.name = LONG
        facilitator = accounts.get_by_email("facilitator@demo.retreat")
        start = now_utc().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
        db.session.add(Consultation(calendar_uid="long-table@test", facilitator_id=facilitator.id, start_at=start,
                                    end_at=start + timedelta(minutes=30), blocked_start=start,
                                    blocked_end=start + timedelta(minutes=30), guest_name=LONG,
                                    guest_email="long@example.com", guest_tz="Europe/Berlin"))
        for i in range(60):  # enough rows that the audit table is taller than the window
            db.session.add(AuditEvent(action=f"test.long_{i}", actor_email=f"{LONG}@example.com",
                                      details={"note": LONG}))
        db.session.commit()
        return db.session.query(Cohort.id).order_by(Cohort.id.desc()).first()[0]


def test_wide_tables_fit_at_1280_and_stack_at_390_with_a_long_name(browser, demo_server):  # noqa: F811
    cohort_id = _long_data(demo_server.app)
    pages = {"facilitator": ["/facilitator/consults", f"/facilitator/cohorts/{cohort_id}/roster"],
             "admin": ["/admin/audit", "/admin/messages"],
             "finance": ["/finance/payments", "/finance/balances", "/finance/payouts"]}
    for role, paths in pages.items():
        context, page = _sign_in(browser, demo_server, role)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for path in paths:
                response = page.goto(demo_server.url + path)
                assert response.ok, path
                got = page.evaluate(FITS)
                assert got["doc"], (path, width, got)
                assert got["tight"], (path, width, got)  # no table scrolls sideways inside its card
        context.close()

    context, page = _sign_in(browser, demo_server, "facilitator")
    roster = demo_server.url + f"/facilitator/cohorts/{cohort_id}/roster"
    page.goto(roster)
    # At 1280 px consents, lodging and notes sit behind each row's "More".
    expect(page.get_by_role("columnheader", name="Lodging")).to_be_hidden()
    more = page.locator("td.col-more summary").first
    more.click()
    expect(page.locator("td.col-more details[open] dt", has_text="Lodging").first).to_be_visible()
    # At 390 px every row stacks: each cell is a block labelled with its column's name.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(roster)
    cell = page.locator("table.roster tbody td[data-label='Payment']").first
    assert cell.evaluate("c => getComputedStyle(c).display") != "table-cell"
    assert cell.evaluate("c => getComputedStyle(c, '::before').content") == '"Payment"'
    expect(page.locator("table.roster tbody td.col-low[data-label='Lodging']").first).to_be_visible()
    context.close()


def test_table_head_stays_in_view_when_the_window_scrolls(browser, demo_server):  # noqa: F811
    _long_data(demo_server.app)
    context, page = _sign_in(browser, demo_server, "admin")
    page.goto(demo_server.url + "/admin/audit")
    head = page.locator("table.audit-table thead th").first
    table_top = page.locator("table.audit-table").evaluate("t => t.getBoundingClientRect().top + window.scrollY")
    page.evaluate(f"window.scrollTo(0, {table_top} + 600)")
    top = head.evaluate("th => th.getBoundingClientRect().top")
    assert 0 <= top <= 2, top  # pinned to the top of the window, not scrolled away with the rows
    wrap = page.locator("table.audit-table").evaluate(
        "t => getComputedStyle(t.closest('.table-wrap')).overflowX + ' ' + getComputedStyle(t.closest('.table-wrap')).overflowY")
    assert wrap == "visible visible", wrap  # the audit log never scrolls inside its card
    context.close()
