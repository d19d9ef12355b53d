"""The practice's time zone, a setting on /admin/settings (issue #20 item 3).

Until an admin chooses one it is America/Denver. Once an admin saves Europe/Berlin, a new cohort's
form starts in Berlin, a new staff account starts in Berlin, and a facilitator without a known zone
gets a consult calendar in Berlin. The change is audited once; an unknown zone is a form error
that names it and changes nothing.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from retreat.accounts import practice
from retreat.accounts import users as accounts
from retreat.consults import publishing
from retreat.core.errors import ValidationFailed
from retreat.models import AuditEvent
from tests import factories
from tests import factories_cohorts as fc

TOTP = "JBSWY3DPEHPK3PXP"


def _changes(db) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "setting.changed",
                                                            AuditEvent.object_id == practice.KEY)))


def _selected(html: str, name: str) -> str | None:
    select_html = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S).group(1)
    match = re.search(r'<option[^>]*selected[^>]*value="([^"]+)"|<option[^>]*value="([^"]+)"[^>]*selected',
                      select_html)
    return (match.group(1) or match.group(2)) if match else None


@pytest.fixture()
def admin(make_client):
    return make_client("admin", password=None, totp_secret=TOTP, totp_enabled_at=accounts.now_utc())


def test_default_is_denver_and_the_settings_page_shows_it(admin, db):
    assert practice.timezone() == "America/Denver"
    html = admin.get("/admin/settings").get_data(as_text=True)
    assert "Practice time zone" in html and _selected(html, "practice_timezone") == "America/Denver"


def test_saving_berlin_is_audited_and_new_things_start_in_it(admin, make_client, db):
    r = admin.post("/admin/settings", data={"practice_timezone": "Europe/Berlin"})
    assert r.status_code == 302
    assert practice.timezone() == "Europe/Berlin"
    [event] = _changes(db)
    assert event.details == {"from": None, "to": "Europe/Berlin"}
    assert _selected(admin.get("/admin/settings").get_data(as_text=True), "practice_timezone") == "Europe/Berlin"
    # Saving again the same zone records nothing.
    assert admin.post("/admin/settings", data={"practice_timezone": "Europe/Berlin"}).status_code == 302
    assert len(_changes(db)) == 1

    # A new cohort's form starts in the practice's zone (listed first in the picker).
    facilitator = make_client("facilitator", password=None, totp_secret=TOTP, totp_enabled_at=accounts.now_utc())
    retreat = fc.retreat()
    db.session.commit()
    html = facilitator.get(f"/facilitator/retreats/{retreat.id}/cohorts/new").get_data(as_text=True)
    assert _selected(html, "timezone") == "Europe/Berlin"
    # A new staff account too.
    html = admin.get("/admin/users/new").get_data(as_text=True)
    assert _selected(html, "tz") == "Europe/Berlin"
    # A facilitator whose own zone is unknown gets a consult calendar in the practice's zone.
    nobody_knows = factories.user("facilitator", password=None, tz="")
    assert publishing.get_settings(nobody_knows, create=True).tz == "Europe/Berlin"
    # One whose zone is known keeps theirs.
    in_tokyo = factories.user("facilitator", password=None, tz="Asia/Tokyo")
    assert publishing.get_settings(in_tokyo, create=True).tz == "Asia/Tokyo"


def test_an_alias_is_stored_as_its_zone(admin, db):
    assert admin.post("/admin/settings", data={"practice_timezone": "Asia/Calcutta"}).status_code == 302
    assert practice.timezone() == "Asia/Kolkata"


@pytest.mark.parametrize("value", ["Mars/Olympus_Mons", "", "Europe/Berlin\x00", "x" * 300])
def test_an_unknown_zone_is_a_form_error_and_changes_nothing(admin, db, value):
    r = admin.post("/admin/settings", data={"practice_timezone": value, "require_staff_totp": "y"})
    html = r.get_data(as_text=True)
    if "\x00" in value:  # refused before any view runs, with its own message
        assert r.status_code == 400
    else:
        assert r.status_code == 422
        assert "practice_timezone-error" in html or "not a time zone" in html or "time zone" in html.lower()
    assert practice.timezone() == "America/Denver" and _changes(db) == []
    assert accounts.get_setting(accounts.REQUIRE_STAFF_TOTP) is None  # the other box was not saved either


def test_the_rule_refuses_an_unknown_zone_on_its_field(db):
    with pytest.raises(ValidationFailed) as exc:
        practice.save("Atlantis/Capital", actor=None)
    assert exc.value.field == "practice_timezone" and "Atlantis/Capital" in str(exc.value)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.object_id == practice.KEY)) == 0
