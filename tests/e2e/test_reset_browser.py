"""Password reset in a real browser (issue #22 item 2): the emailed link's token leaves the address
bar at once (303 to /account/reset-password), the new password works, the old one no longer does.
Real SMTP (aiosmtpd), CSRF on, axe-core on the reset form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.messaging.dispatcher import dispatch_due
from retreat.messaging.transport import transport_from_config
from retreat.timeutil import now_utc

pytestmark = pytest.mark.browser

OLD, NEW = "an-old-long-password-1", "a-brand-new-password-2"
EMAIL = "reese@example.com"


def test_reset_from_the_emailed_link_keeps_the_token_out_of_the_address(live_server, page, smtp_server):
    from axe_playwright_python.sync_playwright import Axe

    app = live_server.app
    with app.app_context():
        accounts.create_user(email=EMAIL, name="Reese", role="participant", password=OLD, verified=True,
                             tz="America/Denver")
        db.session.commit()
    page.goto(live_server.url + "/account/forgot-password")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_text("If an account exists for that address")).to_be_visible()
    with app.app_context():
        dispatch_due(now_utc(), transport=transport_from_config({**app.config, **smtp_server.config()}))
        db.session.remove()
    assert smtp_server.wait_for(1)
    mail = next(m for m in smtp_server.messages if EMAIL in m["To"])
    text = mail.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"(http://\S+/account/reset-password/(\S+))", text)
    url, token = link.group(1), link.group(2)
    assert url.startswith(live_server.url) and len(token) > 20

    page.goto(url)
    page.wait_for_url("**/account/reset-password")
    assert token not in page.url and page.url == live_server.url + "/account/reset-password"
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert token not in page.content()
    serious = [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []
    page.get_by_label("New password").fill(NEW)
    page.get_by_label("Confirm password").fill(NEW)
    page.get_by_role("button", name="Save new password").click()
    page.wait_for_url("**/account/login")
    expect(page.get_by_text("Your password is changed")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(OLD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("do not match")).to_be_visible()
    page.get_by_label("Password").fill(NEW)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/me/**")
    assert "/account/login" not in page.url

    response = page.goto(url)  # the used link opens nothing any more
    assert response.status == 400
    assert page.get_by_role("heading", name="Choose a new password").count() == 0
