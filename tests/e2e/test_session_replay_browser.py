"""A provider's cookies, copied before signing out, open nothing afterwards (issue #16)."""

import pytest
from playwright.sync_api import expect

from retreat.accounts import passwords
from retreat.extensions import db
from tests import factories_clearance as fcl
from tests.e2e import helpers
from tests.e2e.helpers import PASSWORD, sign_in
from tests.factories_clearance import MARKER

pytestmark = pytest.mark.browser


def test_cookies_copied_before_sign_out_are_dead(live_server, page, browser):
    with live_server.app.app_context():
        s = fcl.setup()
        s.provider.password_hash = passwords.hash_password(PASSWORD)
        req = fcl.submit(s, medications=MARKER)
        db.session.commit()
        email, intake = s.provider.email, f"{live_server.url}/provider/requests/{req.id}"
    sign_in(page, live_server.url, email)
    page.goto(intake)
    assert MARKER in page.content()
    copied = page.context.cookies()
    assert any(c["name"] == "session" for c in copied)
    helpers.sign_out(page)
    page.wait_for_load_state()

    other = browser.new_context(timezone_id="America/Denver", locale="en-US")
    try:
        replay = other.new_page()
        other.add_cookies(copied)
        replay.goto(intake)
        replay.wait_for_url("**/account/login**")
        assert MARKER not in replay.content()
        expect(replay.get_by_role("button", name="Sign in")).to_be_visible()
    finally:
        other.close()
