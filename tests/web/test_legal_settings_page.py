"""The admin's screen for the practice's legal details (issue #18 item 2): saves, is audited,
refuses bad input next to its field with nothing saved, and is the admin's only."""

from __future__ import annotations

from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.audit.models import AuditEvent
from retreat.payments import legal

URL = "/admin/settings/legal"
GOOD = {"legal_name": " Mountain Stillness Retreats LLC ", "address": "12 Aspen Way\r\n\r\nBoulder, CO 80302\r\nUSA",
        "tax_id": "EIN 12-3456789", "footer": "Thank you."}


def test_save_then_read_back_and_audited(make_client, db):
    admin = make_client("admin", password=None)
    assert "No legal details are set yet" in admin.get(URL).get_data(as_text=True)
    r = admin.post(URL, data=GOOD)
    assert r.status_code == 302
    details = legal.current()
    assert details.legal_name == "Mountain Stillness Retreats LLC"
    assert details.address_lines == ["12 Aspen Way", "Boulder, CO 80302", "USA"]
    assert details.tax_id == "EIN 12-3456789" and details.footer == "Thank you."
    page = admin.get(URL).get_data(as_text=True)
    assert "No legal details are set yet" not in page and "Mountain Stillness Retreats LLC" in page
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "setting.changed",
                                                         AuditEvent.object_id == legal.KEY)).all()
    assert len(events) == 1 and events[0].actor_id == admin.user.id


def test_bad_input_is_refused_by_field_and_nothing_is_saved(make_client, db):
    admin = make_client("admin", password=None)
    cases = [
        ({**GOOD, "legal_name": ""}, "Legal name is required."),
        ({**GOOD, "address": "  "}, "Address is required."),
        ({**GOOD, "legal_name": "x" * 201}, "Legal name must be at most 200 characters"),
        ({**GOOD, "address": "\n".join(["line"] * 7)}, "Address must be at most 6 lines"),
        ({**GOOD, "tax_id": "9" * 61}, "Tax id must be at most 60 characters"),
    ]
    for data, message in cases:
        r = admin.post(URL, data=data)
        assert r.status_code == 422 and message in r.get_data(as_text=True), data
    assert admin.post(URL, data={**GOOD, "legal_name": "Bad\x00name"}).status_code == 400  # NUL: refused early
    assert accounts.get_setting(legal.KEY) is None


def test_only_admins_reach_it(make_client, db):
    for role in ("facilitator", "provider", "finance", "participant"):
        assert make_client(role, password=None).get(URL).status_code in (403, 404)
