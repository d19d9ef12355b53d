"""A participant applies in a real browser and reaches the seat-hold / payment step; the facilitator
sees them on the roster. Screenshots of the three pages go to /tmp."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import CohortSession, DepositTiming
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e import helpers

pytestmark = pytest.mark.browser
PASSWORD = "a-long-password-1"


def _setup(app):
    with app.app_context():
        now = now_utc()
        fac = accounts.create_user(email="fern@example.com", name="Fern Facilitator", role="facilitator",
                                   password=PASSWORD, verified=True, tz="America/Denver")
        accounts.create_user(email="pat@example.com", name="Pat Participant", role="participant",
                             password=PASSWORD, verified=True, tz="America/Denver")
        org = accounts.create_provider_organization("Front Range Medical Partners")
        retreat = fc.retreat(title="Colorado Mountain Retreat", slug="colorado-mountain-retreat",
                             location="Crestone, Colorado",
                             summary="Six days of IFS-informed group work with ketamine-assisted sessions.",
                             description="A small group in a quiet mountain lodge.\n\nCareful screening by our "
                                         "licensed partner provider, and integration circles afterwards.",
                             included="Lodging\nAll meals\nTwo supervised dosing sessions\nIntegration circles")
        c = fc.cohort(retreat, title="Spring cohort", capacity=8, starts_at=now + timedelta(days=70),
                      deposit_timing=DepositTiming.BEFORE_CLEARANCE, provider_organization_id=org.id,
                      price_minor=480000, deposit_minor=75000, refund_policy="Full refund until 60 days before.")
        for day, kind, title in [(0, "orientation", "Arrival and orientation"), (1, "dosing", "First dosing session"),
                                 (2, "ifs", "IFS group session"), (5, "integration_circle", "Closing circle")]:
            start = c.starts_at + timedelta(days=day)
            db.session.add(CohortSession(cohort_id=c.id, kind=kind, title=title, starts_at=start,
                                         ends_at=start + timedelta(hours=2), location="Main hall",
                                         facilitator_id=fac.id))
        preparation.publish_consent(kind="participation", title="Consent to participate",
                         body="I understand the dosing sessions are run by a licensed partner provider.",
                         actor=fac, now=now)
        for i, name in enumerate(["Alex Rivera", "Blair Chen", "Casey Morgan", "Devon Patel"]):
            e = fc.applicant(c, now=now, name=name)
            if i < 3:
                enrollment.submit_intake(e, now=now, actor=None)
            if i < 2:
                seats.take_hold(e, now=now, actor=None)
                enrollment.confirm_seat(e, now=now, actor=None)
                preparation.complete(e, "intention", answer="To listen.", now=now)
                e.lodging = f"Cabin {i + 1}"
        db.session.commit()
        return c.id


def test_participant_applies_and_reaches_seat_hold(live_server, page):
    cohort_id = _setup(live_server.app)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/cohorts/{cohort_id}")
    expect(page.get_by_text("6 seats left")).to_be_visible()
    page.screenshot(path="/tmp/cohort_public.png", full_page=True)
    page.get_by_role("link", name="Apply now").click()
    page.get_by_label("Email").fill("pat@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/me/cohorts/{cohort_id}/apply")
    page.get_by_role("button", name="Submit my application").click()
    expect(page.get_by_text("Please confirm that you understand this.")).to_be_visible()
    page.get_by_label("What draws you to this retreat?").fill("I want to get to know my parts.")
    page.get_by_label("I understand that a licensed partner provider").check()
    page.get_by_role("button", name="Submit my application").click()
    page.wait_for_url("**/me/enrollments/*")
    expect(page.get_by_text("Thank you for applying!")).to_be_visible()
    page.get_by_role("button", name="Reserve my seat and pay the deposit").click()
    expect(page.get_by_text("Your seat is held for 30 minutes")).to_be_visible()
    expect(page.get_by_text("Deposit: $750.00")).to_be_visible()
    page.screenshot(path="/tmp/cohort_tracker.png", full_page=True)

    helpers.sign_out(page)
    page.goto(f"{live_server.url}/account/login")
    page.get_by_label("Email").fill("fern@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/facilitator/")
    page.goto(f"{live_server.url}/facilitator/cohorts/{cohort_id}/roster")
    row = page.get_by_role("row", name="Pat Participant")
    assert "Paying (seat held)" in row.inner_text()
    page.screenshot(path="/tmp/cohort_roster.png", full_page=True)
