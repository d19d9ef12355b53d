"""A participant fills the intake in a real browser, the partner provider decides, the participant
sees the outcome. CSRF is on; the intake's script shows crisis resources and autosaves."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.clinical import screening
from retreat.cohorts import enrollment
from retreat.cohorts.models import CohortStatus, DepositTiming
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e import helpers
from tests.e2e.helpers import PASSWORD, sign_in

pytestmark = pytest.mark.browser
SHOTS = "/tmp"


def sign_out(page):
    helpers.sign_out(page)


def test_intake_then_provider_decision_then_participant_sees_outcome(live_server, page):
    now = now_utc()
    with live_server.app.app_context():
        org = accounts.create_provider_organization("Front Range Medical Partners")
        provider = accounts.create_user(email="dr.priya@example.com", name="Priya Provider", role="provider",
                                        password=PASSWORD, verified=True, provider_organization=org,
                                        tz="America/Denver")
        accounts.add_license(provider, number="DR.0061234", state="CO", expires_on=(now + timedelta(days=400)).date())
        person = accounts.create_user(email="pat@example.com", name="Pat Participant", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        cohort = fc.cohort(fc.retreat(title="Colorado Spring Retreat"), status=CohortStatus.OPEN,
                           deposit_timing=DepositTiming.AFTER_CLEARANCE, starts_at=now + timedelta(days=60),
                           provider_organization_id=org.id, title="May cohort")
        enrollment.apply(cohort, person, now=now)
        db.session.commit()

    # The participant fills the intake.
    sign_in(page, live_server.url, "pat@example.com")
    page.goto(live_server.url + "/me/intake")
    page.get_by_role("link", name="Start your intake").click()
    expect(page.get_by_role("heading", name="Medical intake")).to_be_visible()
    for q in screening.TEXT_QUESTIONS:
        page.fill(f"#{q.key}", {"emergency_contact_phone": "+1 303 555 0100"}.get(q.key, f"None ({q.label.lower()})"))
    page.fill("#medications", "Sertraline 50 mg once daily")
    for key, value in {"bp_systolic": "122", "bp_diastolic": "78", "height_cm": "170", "weight_kg": "68"}.items():
        page.fill(f"#{key}", value)
    page.check("#copd")
    for key in screening.PHQ9_KEYS + screening.GAD7_KEYS:
        page.check(f"#{key}-1")
    crisis = page.locator("#crisis-panel")
    expect(crisis).to_be_visible()  # item 9 "Several days": crisis resources at once, before any save
    assert "988" in crisis.inner_text()
    page.wait_for_selector("#autosave-status:has-text('Draft saved')")  # saved at once: the team is alerted
    page.check("#phq9_9-0")
    page.screenshot(path=f"{SHOTS}/clearance_intake_form.png", full_page=True)
    page.get_by_role("button", name="Submit for medical review").click()
    page.wait_for_url("**/clearance")
    expect(page.get_by_role("heading", name="Status: In medical review")).to_be_visible()
    sign_out(page)

    # The provider reviews and decides.
    sign_in(page, live_server.url, "dr.priya@example.com")
    expect(page.get_by_role("heading", name="Clearance queue")).to_be_visible()
    expect(page.get_by_text("Safety review needed").first).to_be_visible()  # raised by the autosave
    page.get_by_role("link", name="Review").click()
    expect(page.get_by_text("Sertraline 50 mg once daily")).to_be_visible()
    expect(page.get_by_text("COPD (chronic obstructive pulmonary disease)").first).to_be_visible()
    expect(page.get_by_text("DR.0061234").first).to_be_visible()
    page.get_by_label("Cleared with conditions").check()
    page.fill("#conditions", "Blood pressure check on arrival")
    page.fill("#attestation_name", "Priya Provider")
    page.screenshot(path=f"{SHOTS}/clearance_provider_decision.png", full_page=True)
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("heading", name="Decision: Cleared with conditions")).to_be_visible()
    sign_out(page)

    # The participant sees the outcome.
    sign_in(page, live_server.url, "pat@example.com")
    page.goto(live_server.url + "/me/intake")
    page.get_by_role("link", name="Review status and messages").click()
    expect(page.get_by_role("heading", name="Status: Cleared with conditions")).to_be_visible()
    expect(page.get_by_text("Blood pressure check on arrival")).to_be_visible()
    expect(page.get_by_text("you can now pay your deposit")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/clearance_participant_outcome.png", full_page=True)
