"""Integration circles in a real browser (CSRF on): a participant sees the plan's circles, says
they can't make one and changes their mind; the facilitator sees the answer, takes attendance and
moves the circles to another weekday (a stale second tab is refused)."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.cohorts import enrollment
from retreat.extensions import db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.integration.models import IntegrationPlan
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e.helpers import PASSWORD, open_menu, sign_in

pytestmark = pytest.mark.browser


def test_circles_rsvp_attendance_and_plan_edit_in_a_browser(live_server, page, browser):
    now = now_utc()
    with live_server.app.app_context():
        person = accounts.create_user(email="jo@example.com", name="Jo Participant", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        fran = accounts.create_user(email="fran@example.com", name="Fran Facilitator", role="facilitator",
                             password=PASSWORD, verified=True, tz="America/Denver")
        cohort = fc.cohort(fc.retreat(title="Colorado Retreat"), title="May cohort", starts_at=now + timedelta(days=30))
        enr = enrollment.apply(cohort, person, now=now)
        for step in (enrollment.submit_intake, enrollment.request_clearance, enrollment.mark_cleared):
            step(enr, now=now, actor=None)
        enrollment.confirm_seat(enr, now=now, actor=None)
        plan = ip.ensure_plan(cohort, now)
        ic.update_plan(plan, {"circle_weeks": "3", "circle_weekday": "1", "circle_local_time": "18:00",
                              "circle_duration_minutes": "90", "circle_video_url": "https://meet.example/circle"},
                       expected_version=1, actor=fran, now=now)
        db.session.commit()
        ids = {"cohort": cohort.id, "circle": ic.plan_circles(cohort)[0].id, "plan": plan.id}

    sign_in(page, live_server.url, "jo@example.com")
    open_menu(page, "Integration")
    page.get_by_role("link", name="Circles", exact=True).click()
    card = page.locator(f"#circle-{ids['circle']}")
    expect(card.get_by_text("Integration circle 1")).to_be_visible()
    assert card.get_by_text("18:00").count() >= 1  # shown in the participant's zone
    expect(card.get_by_role("link", name="https://meet.example/circle")).to_be_visible()
    card.get_by_label("Note for the facilitator (optional)").fill("Visiting family")
    card.get_by_role("button", name="I can't make it").click()
    expect(page.get_by_text("You won't get reminders for this circle")).to_be_visible()
    card = page.locator(f"#circle-{ids['circle']}")
    expect(card.get_by_text("Your answer: I can't make it")).to_be_visible()
    fac = browser.new_context(timezone_id="America/Denver", locale="en-US").new_page()
    sign_in(fac, live_server.url, "fran@example.com")
    fac.goto(f"{live_server.url}/facilitator/cohorts/{ids['cohort']}/integration")
    fac.get_by_role("link", name="RSVPs and attendance").first.click()
    expect(fac.get_by_text("Can't make it · “Visiting family”")).to_be_visible()
    fac.get_by_role("button", name="Present").click()
    assert fac.locator(".checkin-state").first.inner_text() == "Present"

    # Two tabs on the plan; the first moves the circles to Thursdays, the second is refused.
    fac.goto(f"{live_server.url}/facilitator/cohorts/{ids['cohort']}/integration")
    stale = fac.context.new_page()
    stale.goto(fac.url)
    fac.select_option("#circle_weekday", "3")
    fac.get_by_role("button", name="Save the plan").click()
    expect(fac.get_by_text("Plan saved: ")).to_be_visible()
    expect(fac.get_by_text("kept as it was: attendance has been taken")).to_be_visible()
    stale.fill("#circle_weeks", "5")
    stale.get_by_role("button", name="Save the plan").click()
    expect(stale.get_by_text("Someone else changed this plan")).to_be_visible()
    with live_server.app.app_context():
        p = db.session.get(IntegrationPlan, ids["plan"])
        assert (p.circle_weekday, p.circle_weeks, p.version) == (3, 3, 3)
