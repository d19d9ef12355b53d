"""Crisis resources: a practice setting (US 988 and 911 by default) with an admin screen, shown on
participants' and guests' pages and emails, never on staff pages or staff emails."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from retreat.accounts import crisis
from retreat.messaging import outbox
from retreat.messaging.render import STAFF_TEMPLATES, render_email
from retreat.models import AuditEvent, SiteSetting
from tests import factories

ROWS = 6


def _form(country="Germany", rows=(("Telefonseelsorge", "0800 111 0 111", "Free, 24/7"),
                                     ("Emergency", "112", ""))) -> dict:
    data = {"country": country}
    for i in range(ROWS):
        name, number, description = rows[i] if i < len(rows) else ("", "", "")
        data |= {f"resources-{i}-name": name, f"resources-{i}-number": number,
                 f"resources-{i}-description": description}
    return data


def _german(app):
    with app.test_request_context():
        crisis.save(crisis.validate("Germany", [{"name": "Telefonseelsorge", "number": "0800 111 0 111",
                                                 "description": ""}]), actor=None)


def test_the_default_is_the_us_numbers(app, db):
    with app.app_context():
        value = crisis.current()
    assert value.country == "United States"
    assert [r.number for r in value.resources] == ["988", "911"]


@pytest.mark.parametrize("role", ["participant", None])
def test_participant_and_guest_pages_show_the_numbers(make_client, client, db, role):
    c = make_client(role, password=None) if role else client
    for path in ["/", "/consult"] + (["/me"] if role else []):
        page = c.get(path, follow_redirects=True).get_data(as_text=True)
        assert 'href="tel:988"' in page and 'href="tel:911"' in page, path


@pytest.mark.parametrize("role,path", [("facilitator", "/facilitator/"), ("finance", "/finance/"),
                                       ("admin", "/admin/"), ("provider", "/provider/")])
def test_staff_pages_do_not(make_client, db, role, path):
    c = make_client(role, password=None)
    r = c.get(path, follow_redirects=True)
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "tel:988" not in page and "Crisis resources" not in page.split("<main")[0]
    assert "Suicide &amp; Crisis Lifeline" not in page


def test_admin_changes_them_and_everyone_sees_the_change(make_client, client, db):
    admin = make_client("admin", password=None)
    r = admin.post("/admin/settings/crisis-resources", data=_form())
    assert r.status_code == 302
    row = db.session.get(SiteSetting, crisis.KEY)
    assert json.loads(row.value)["country"] == "Germany"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "setting.changed", AuditEvent.object_id == crisis.KEY)) == 1
    page = client.get("/").get_data(as_text=True)
    assert 'href="tel:08001110111"' in page and "Telefonseelsorge" in page and "112" in page
    assert "tel:988" not in page
    form = admin.get("/admin/settings/crisis-resources").get_data(as_text=True)
    assert 'value="Telefonseelsorge"' in form


@pytest.mark.parametrize("data,message", [
    (_form(rows=()), "at least one crisis number"),
    (_form(rows=(("Lifeline", "", ""),)), "give both a name and a number"),
    (_form(rows=(("Lifeline", "call us", ""),)), "the number may hold digits"),
    (_form(country=""), "Country is required"),
    (_form(rows=(("x" * 81, "988", ""),)), "at most 80"),
])
def test_bad_input_is_refused_with_a_message_and_changes_nothing(make_client, db, data, message):
    admin = make_client("admin", password=None)
    r = admin.post("/admin/settings/crisis-resources", data=data)
    assert r.status_code == 422
    assert message in r.get_data(as_text=True)
    assert db.session.get(SiteSetting, crisis.KEY) is None


def test_only_admins_reach_the_screen(make_client, db):
    for role in ("participant", "facilitator", "finance", "provider"):
        c = make_client(role, password=None)
        assert c.get("/admin/settings/crisis-resources").status_code in (403, 404), role


def test_participant_emails_carry_the_numbers_and_staff_emails_do_not(app, db):
    with app.test_request_context():
        mail = render_email("verify_email", {"url": "https://x.test/v"})
        assert "988" in mail.text and 'href="tel:988"' in mail.html and "911" in mail.text
        for template in STAFF_TEMPLATES:
            staff = render_email(template, {"url": "https://x.test/a", "cohort_title": "Spring"})
            assert "988" not in staff.text and "tel:" not in (staff.html or ""), template


def test_an_account_email_to_a_staff_member_is_a_staff_email(app, db):
    facilitator = factories.user("facilitator", password=None)
    participant = factories.user("participant", password=None)
    with app.test_request_context():
        to_staff = outbox.enqueue(template="password_reset", dedupe_key="t-staff", to_user=facilitator,
                                  context={"url": "https://x.test/r"})
        to_participant = outbox.enqueue(template="password_reset", dedupe_key="t-part", to_user=participant,
                                        context={"url": "https://x.test/r"})
        assert "988" not in render_email(to_staff.template, to_staff.context).text
        assert "988" in render_email(to_participant.template, to_participant.context).text


def test_emails_follow_the_setting(app, db):
    _german(app)
    with app.test_request_context():
        mail = render_email("verify_email", {"url": "https://x.test/v"})
    assert "Telefonseelsorge 0800 111 0 111" in mail.text and "988" not in mail.text


def test_check_in_and_intake_safety_panels_use_the_setting(app, db):
    _german(app)
    from flask import render_template
    with app.test_request_context():
        panel = render_template("participant/intake_crisis.html", safety=True)
        followup = render_template("public/_followup_crisis.html", practice_name="P", contact_phone="",
                                   contact_email="")
    for html in (panel, followup):
        assert "tel:08001110111" in html and "tel:988" not in html
