"""Data rights in a real browser (CSRF on): a participant opens "My data", downloads the JSON export,
reads the readable page (a heading per section), asks for deletion (double-clicking the button makes
one request); the admin finds it on their home, reads what is kept and why, carries it out (double
click: once), and the participant's session is gone. Screenshots in /tmp/shots-rights/; axe finds no
serious or critical violation on the pages walked."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from retreat.accounts import users as accounts
from retreat.core.crypto import encrypt_field
from retreat.extensions import db
from retreat.integration.journal_models import JournalEntry
from retreat.models import AuditEvent, OutboxMessage
from retreat.privacy import erasure
from retreat.privacy.models import DeletionRequest
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests import finance_helpers as fh
from tests.e2e.helpers import PASSWORD, open_menu, sign_in

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-rights")
SERIOUS = ("serious", "critical")


def _axe(page, findings: list[str]) -> None:
    from axe_playwright_python.sync_playwright import Axe

    for violation in Axe().run(page).response["violations"]:
        if violation["impact"] in SERIOUS:
            findings.append(f"{page.url}: {violation['id']} {[n['target'] for n in violation['nodes'][:3]]}")


def _shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_export_and_deletion_walked_by_participant_and_admin(live_server, page, browser, tmp_path):
    app = live_server.app
    now = now_utc()
    with app.app_context():
        person = accounts.create_user(email="rae@example.com", name="Rae Participant", password=PASSWORD,
                                      verified=True, tz="America/Denver")
        accounts.create_user(email="ada@example.com", name="Ada Admin", role="admin", password=PASSWORD,
                             verified=True, tz="America/Denver")
        c = fh.cohort(retreat_obj=fc.retreat(title="Colorado Retreat"), title="Spring cohort",
                      starts_at=now - timedelta(days=60))
        enr = fh.seated(c, at=now - timedelta(days=90))
        enr.participant_id = person.id
        db.session.add(JournalEntry(participant_id=person.id, enrollment_id=enr.id, realm="emotions",
                                    text_enc=encrypt_field("JOURNAL-BROWSER-7781")))
        db.session.commit()
        person_id = person.id
    findings: list[str] = []

    # The participant: My data, the JSON download, the readable page.
    sign_in(page, live_server.url, "rae@example.com")
    open_menu(page, "Account")
    page.get_by_role("link", name="My data").first.click()
    expect(page.get_by_role("heading", name="Your data", exact=True)).to_be_visible()
    _shot(page, "1-participant-my-data")
    _axe(page, findings)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as JSON").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    data = json.loads(saved.read_text())
    assert data["account"]["email"] == "rae@example.com" and data["journal_entries"][0]["text"] == "JOURNAL-BROWSER-7781"
    assert data["payments"][0]["status"] == "succeeded" and data["ledger"]
    page.get_by_role("link", name="View as a readable page").click()
    page.wait_for_url("**/me/data/export.html")
    for title in ("Your account", "Payments and refunds", "Your integration journal", "Who has read your medical record"):
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    assert "MST" in page.content() or "MDT" in page.content()  # times in Rae's zone
    _shot(page, "2-participant-export-page")
    _axe(page, findings)

    # Asking for deletion, double-clicking the button: one request.
    page.go_back()
    page.get_by_label("Anything you would like us to know (optional)").fill("Please delete my data.")
    page.get_by_label("I understand what is deleted now and what the practice must keep").check()
    page.get_by_role("button", name="Request deletion").dblclick()
    page.wait_for_load_state()
    expect(page.get_by_text("Your deletion request is logged").first).to_be_visible()
    _shot(page, "3-participant-deletion-requested")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DeletionRequest)) == 1

    # The admin: the home panel, the request's page, carrying it out (double click: once).
    admin_ctx = browser.new_context(timezone_id="America/Denver", locale="en-US")
    admin = admin_ctx.new_page()
    admin.set_default_timeout(10_000)
    try:
        sign_in(admin, live_server.url, "ada@example.com")
        admin.goto(live_server.url + "/admin/")
        admin.get_by_role("link", name="Rae Participant").first.click()
        expect(admin.get_by_role("heading", name="What must be kept, and why")).to_be_visible()
        expect(admin.get_by_text("Tax and accounting law").first).to_be_visible()
        expect(admin.get_by_text("Please delete my data.")).to_be_visible()
        _shot(admin, "4-admin-deletion-request")
        _axe(admin, findings)
        admin.get_by_label("Note to the participant").fill("Done as you asked. Take care.")
        admin.get_by_role("button", name="Carry out the deletion").dblclick()
        admin.wait_for_load_state()
        expect(admin.get_by_text("account closed").first).to_be_visible()
        _shot(admin, "5-admin-deletion-done")
        _axe(admin, findings)
    finally:
        admin_ctx.close()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "privacy.deletion_done")) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == erasure.DONE_TEMPLATE, OutboxMessage.recipient_email == "rae@example.com")) == 1
        assert db.session.scalar(select(func.count()).select_from(JournalEntry).where(
            JournalEntry.participant_id == person_id)) == 0

    # The participant's open session is gone: the next page asks them to sign in, and they cannot.
    page.reload()
    page.wait_for_url("**/account/login**")
    _shot(page, "6-participant-signed-out")
    sign_in(page, live_server.url, "rae@example.com")
    assert "/account/login" in page.url
    assert not findings, "\n".join(findings)
