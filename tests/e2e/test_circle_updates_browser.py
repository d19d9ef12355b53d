"""Items 17 and 18 in a real browser: a facilitator changes only the circles' place and sees "3
places changed", and each participant gets one update email; the dosing check-in shows who is not
cleared and refuses to mark them present."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from retreat.accounts import users as accounts
from retreat.cohorts import catalog, enrollment, seats
from retreat.extensions import db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e.helpers import PASSWORD, sign_in

pytestmark = pytest.mark.browser
SHOTS = "/tmp/correct"


def _setup(now):
    fran = accounts.create_user(email="fran@example.com", name="Fran Facilitator", role="facilitator",
                                password=PASSWORD, verified=True, tz="America/Denver")
    cohort = fc.cohort(fc.retreat(title="Colorado Retreat"), title="May cohort", starts_at=now + timedelta(days=30))
    people = []
    for name, cleared in (("Casey Cleared", True), ("Uma Uncleared", False)):
        person = accounts.create_user(email=f"{name.split()[0].lower()}@example.com", name=name, password=PASSWORD,
                                      verified=True, tz="America/Denver")
        enr = enrollment.apply(cohort, person, now=now)
        if cleared:
            fc.record_clearance(enr, now=now)
        seats.take_hold(enr, now=now, actor=None)
        enrollment.confirm_seat(enr, now=now, actor=None)
        people.append(enr)
    plan = ip.ensure_plan(cohort, now)
    ic.update_plan(plan, {"circle_weeks": "3", "circle_weekday": "1", "circle_local_time": "18:00",
                          "circle_duration_minutes": "90", "circle_location": "Lodge"},
                   expected_version=1, actor=fran, now=now)
    dosing = catalog.add_session(cohort, kind="dosing", title="Dosing day 1", starts_at=cohort.starts_at,
                                 ends_at=cohort.starts_at + timedelta(hours=4), location="Main room", video_url="",
                                 facilitator_id=None, actor=fran, now=now)
    db.session.execute(update(OutboxMessage).where(OutboxMessage.template == "circle_invite")
                       .values(status="sent"))  # everyone has their invites
    db.session.commit()
    return cohort.id, dosing.id, people[1].id


def _count(template):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template == template, OutboxMessage.status == "pending"))


def test_changing_only_the_place_sends_one_update_each_and_dosing_checkin_refuses_the_uncleared(
        live_server, page):
    with live_server.app.app_context():
        cohort_id, dosing_id, uma_id = _setup(now_utc())
    sign_in(page, live_server.url, "fran@example.com")
    page.goto(f"{live_server.url}/facilitator/cohorts/{cohort_id}/integration")
    page.fill("#circle_location", "Barn, 2 Elm St")
    page.get_by_role("button", name="Save the plan").click()
    expect(page.get_by_text("Plan saved: 3 places changed. 2 participants sent one update each.")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/plan-saved.png", full_page=True)
    with live_server.app.app_context():
        assert _count("circles_updated") == 2 and _count("circle_invite") == 0

    page.goto(f"{live_server.url}/facilitator/sessions/{dosing_id}/checkin")
    row = page.locator(f"#p{uma_id}")
    expect(row.get_by_text("Not cleared")).to_be_visible()
    assert row.get_by_role("button", name="Present").is_disabled()
    page.screenshot(path=f"{SHOTS}/dosing-checkin.png", full_page=True)
