"""Sign-up, email verification and two-factor sign-in through a real browser (CSRF on)."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.messaging.dispatcher import dispatch_due
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc

pytestmark = pytest.mark.browser

PASSWORD = "a-calm-long-password"


def _verify_link(app, smtp_server, email: str) -> str:
    """Send what is due through the real dispatcher to the test SMTP server and read the link
    out of the email the participant would receive."""
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.template == "verify_email",
                                                             OutboxMessage.recipient_email == email))
        dispatch_due(now=now_utc())
        db.session.remove()
    assert smtp_server.wait_for(1)
    mail = next(m for m in smtp_server.messages if email in m["To"])
    text = mail.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"(http://\S+/account/verify-email/\S+)", text)
    assert match, text
    return match.group(1)


def test_participant_signs_up_verifies_and_signs_back_in(live_server, page, smtp_server):
    live_server.app.config.update(smtp_server.config())
    page.goto(live_server.url + "/account/signup")
    # timezone.js preselects the browser's zone (the test browser runs in America/Denver).
    assert page.get_by_label("Your time zone").input_value() == "America/Denver"
    page.get_by_label("Your name").fill("Robin Rivers")
    page.get_by_label("Email").fill("Robin@Example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD + "x")
    page.get_by_label("I have read and agree to the privacy notice").check()
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("The two passwords do not match.")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.screenshot(path="/tmp/signup.png", full_page=True)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/account/check-email")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    # Nobody is signed in by a sign-up (the answer is the same for an address that has an account).
    assert page.get_by_text("Please confirm your email address").count() == 0

    link = _verify_link(live_server.app, smtp_server, "robin@example.com")
    assert link.startswith(live_server.url + "/account/verify-email/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Your email address is confirmed")).to_be_visible()
    assert page.get_by_text("Please confirm your email address").count() == 0

    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/account/login")
    page.get_by_label("Email").fill("robin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/me/")
    expect(page.get_by_role("heading", name="Welcome, Robin Rivers")).to_be_visible()
    page.goto(live_server.url + "/account/settings")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    assert page.get_by_label("Time zone").input_value() == "America/Denver"
    page.screenshot(path="/tmp/settings.png", full_page=True)

    page.get_by_role("link", name="Set up two-factor").click()
    expect(page.locator(".qr svg")).to_be_visible()
    page.screenshot(path="/tmp/totp_setup.png", full_page=True)
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
    assert page.locator(".recovery-codes li").count() == 10


def test_staff_with_two_factor_signs_in_with_password_then_code(live_server, page):
    secret = pyotp.random_base32()
    with live_server.app.app_context():
        user = accounts.create_user(email="fern@example.com", name="Fern", role="facilitator",
                                    password=PASSWORD, verified=True, tz="America/Denver")
        user.totp_secret = secret
        user.totp_enabled_at = now_utc()
        db.session.commit()
    page.goto(live_server.url + "/account/login")
    page.get_by_label("Email").fill("fern@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account/login/two-factor")
    page.get_by_label("Code").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/facilitator/")
    expect(page.get_by_role("heading", name="Facilitator dashboard")).to_be_visible()
    page.goto(live_server.url + "/account/two-factor/setup")
    expect(page.get_by_text("Two-factor authentication is on for your account.")).to_be_visible()
