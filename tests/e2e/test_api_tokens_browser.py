"""API tokens in a real browser (CSRF on): an admin opens Your account → Manage API tokens, creates a
token with one scope and a 30-day expiry, copies the secret shown once, the token works for that
scope and is refused for another, then revokes it; axe finds no serious or critical violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from retreat.accounts import users as accounts
from retreat.extensions import db
from tests.e2e.helpers import PASSWORD, open_menu, sign_in

pytestmark = pytest.mark.browser
SERIOUS = ("serious", "critical")


def _axe(page, findings: list[str]) -> None:
    from axe_playwright_python.sync_playwright import Axe

    for violation in Axe().run(page).response["violations"]:
        if violation["impact"] in SERIOUS:
            findings.append(f"{page.url}: {violation['id']} {[n['target'] for n in violation['nodes'][:3]]}")


def test_create_use_and_revoke_a_token(live_server, page):
    with live_server.app.app_context():
        accounts.create_user(email="ada@example.com", name="Ada Admin", role="admin", password=PASSWORD,
                             verified=True, tz="America/Denver")
        db.session.commit()
    findings: list[str] = []
    sign_in(page, live_server.url, "ada@example.com")
    open_menu(page, "Account")
    page.get_by_role("link", name="Your account").first.click()
    page.get_by_role("link", name="Manage API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()
    _axe(page, findings)
    page.get_by_label("Token name").fill("Zapier")
    page.get_by_label("admin:webhooks", exact=False).check()
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Your new API token")).to_be_visible()
    _axe(page, findings)
    raw = page.get_by_label("Token").input_value()
    assert raw.startswith("rt")
    headers = {"Authorization": f"Bearer {raw}"}
    assert page.request.get(live_server.url + "/api/v1/webhook-endpoints", headers=headers).status == 200
    refused = page.request.get(live_server.url + "/api/v1/payments", headers=headers)
    assert refused.status == 403 and refused.json()["error"] == "This token lacks the scope read:finance."
    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row", name="Zapier")
    expect(row).to_contain_text("admin:webhooks")
    expect(row).to_contain_text("active")
    assert raw not in page.content()
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row", name="Zapier")).to_contain_text("revoked")
    gone = page.request.get(live_server.url + "/api/v1/webhook-endpoints", headers=headers)
    assert gone.status == 401 and gone.json()["error"] == "This token was revoked."
    _axe(page, findings)
    assert findings == []
