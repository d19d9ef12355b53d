"""A participant answers a check-in from the link in the email they received (real SMTP, real
browser, CSRF on): a missing answer is pointed out, then the answers are sent, asking for contact,
and the thank-you page shows crisis resources while the facilitators' alert is queued."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.accounts import passwords
from retreat.extensions import db
from retreat.integration.followup_models import CheckInResponse, FollowUp, IntegrationAlert
from retreat.messaging.dispatcher import dispatch_due
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc
from tests import followup_helpers as fh

pytestmark = pytest.mark.browser


PASSWORD = "a-long-password-1"


def test_participant_answers_a_check_in_from_the_emailed_link(live_server, page, browser, smtp_server):
    app = live_server.app
    app.config.update(smtp_server.config())
    with app.app_context():
        s = fh.setup(dosing_end=now_utc().replace(microsecond=0) - timedelta(hours=26))
        s.facilitator.email = "fran@example.com"
        s.facilitator.password_hash = passwords.hash_password(PASSWORD)
        enr = fh.confirmed(s, name="Robin Example", email="robin@example.com")
        checkin = fh.followups_of(enr)["checkin_24h"]
        due, checkin_id, facilitator_id = checkin.due_at, checkin.id, s.facilitator.id
        db.session.commit()
        dispatch_due(now=due)  # the scheduler's dispatcher at the check-in's time
        db.session.remove()
    assert smtp_server.wait_for(1)
    mail = next(m for m in smtp_server.messages if m["Subject"].startswith("How are you doing?"))
    assert "robin@example.com" in mail["To"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"(http://\S+/follow-up/\S+)", text).group(1)
    assert link.startswith(live_server.url)

    page.goto(link)
    expect(page.get_by_role("heading", name="24-hour check-in")).to_be_visible()
    page.get_by_label("I slept well").check()
    page.locator("#difficult-no").check()
    page.get_by_role("button", name="Send my answers").click()
    assert page.locator("#score-error").inner_text() == "Please answer this question."
    expect(page.get_by_text("Nothing was saved yet.")).to_be_visible()
    assert page.get_by_label("I slept well").is_checked()  # the other answers were kept
    page.screenshot(path="/tmp/followup_form.png", full_page=True)

    page.locator("label[for=score-3]").click()
    page.get_by_label("I would like someone to reach out to me").check()
    page.get_by_label("Anything you would like to share (optional)").fill("Hard night, lots came up.")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    panel = page.locator(".crisis-panel")
    expect(panel).to_be_visible()
    assert "988" in panel.inner_text() and "911" in panel.inner_text()
    page.screenshot(path="/tmp/followup_thanks.png", full_page=True)

    page.goto(link)  # the link again: already answered, nothing overwritten
    expect(page.get_by_role("heading", name="Already answered")).to_be_visible()
    with app.app_context():
        f = db.session.get(FollowUp, checkin_id)
        assert f.status == "answered"
        assert len(db.session.scalars(select(CheckInResponse)).all()) == 1
        reasons = sorted(a.reason for a in db.session.scalars(select(IntegrationAlert)))
        assert reasons == ["low_score", "reach_out"]
        to_facilitator = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "integration_alert")).all()
        assert [m.recipient_user_id for m in to_facilitator] == [facilitator_id]
        db.session.remove()

    # The facilitator sees the alert on the dashboard: who and why, never the answers.
    fac_ctx = browser.new_context(timezone_id="America/Denver", locale="en-US")
    fpage = fac_ctx.new_page()
    try:
        fpage.goto(live_server.url + "/account/login")
        fpage.get_by_label("Email").fill("fran@example.com")
        fpage.get_by_label("Password").fill(PASSWORD)
        fpage.get_by_role("button", name="Sign in").click()
        fpage.goto(live_server.url + "/facilitator/")
        panel = fpage.locator("#integration-alerts")
        assert "Robin Example" in panel.inner_text() and "Asked for someone to reach out" in panel.inner_text()
        assert "Very low check-in score" in panel.inner_text() and "Hard night" not in fpage.content()
        rates = fpage.locator("#followup-response-rates").inner_text()
        assert "24-hour check-in\t1\t1\t100 %" in rates
        fpage.screenshot(path="/tmp/followup_dashboard.png", full_page=True)
        panel.get_by_role("button", name="Acknowledge").first.click()
        expect(fpage.get_by_text("Alert acknowledged")).to_be_visible()
        assert fpage.locator("#integration-alerts tbody tr").count() == 1
    finally:
        fac_ctx.close()
