"""The admin's screen for the safety follow-through settings: shows the defaults, saves, refuses bad
input next to its field with nothing saved, and is the admin's only."""

from __future__ import annotations

from retreat.accounts import users as accounts
from retreat.integration import escalation

URL = "/admin/settings/safety"


def test_defaults_then_save_then_the_same_again(make_client, db):
    admin = make_client("admin", password=None)
    page = admin.get(URL).get_data(as_text=True)
    assert 'value="4"' in page and "No practice contact is set" in page
    r = admin.post(URL, data={"escalate_after_hours": "6", "practice_contact_email": " Safety@Practice.example "})
    assert r.status_code == 302
    assert escalation.after_hours() == 6 and escalation.practice_contact() == "safety@practice.example"
    again = admin.post(URL, data={"escalate_after_hours": "6", "practice_contact_email": "safety@practice.example"})
    assert again.status_code == 302 and escalation.after_hours() == 6
    assert "No practice contact is set" not in admin.get(URL).get_data(as_text=True)


def test_empty_overlong_and_out_of_range_input_is_refused_by_field(make_client, db):
    admin = make_client("admin", password=None)
    cases = [
        ({}, "Enter how many hours an alert may wait before it is escalated."),
        ({"escalate_after_hours": "0"}, "Enter a whole number of hours from 1 to 72."),
        ({"escalate_after_hours": "99999999999"}, "That number is too large."),
        ({"escalate_after_hours": "4", "practice_contact_email": "nope"}, "Enter an email address"),
        ({"escalate_after_hours": "4", "practice_contact_email": "a@" + "b" * 300 + ".org"}, "Practice safety contact (email) must be at most 254 characters"),
    ]
    for data, message in cases:
        r = admin.post(URL, data=data)
        assert r.status_code == 422 and message in r.get_data(as_text=True), data
    assert accounts.get_setting(escalation.AFTER_HOURS_KEY) is None
    assert accounts.get_setting(escalation.CONTACT_KEY) is None


def test_only_admins_reach_it(make_client, db):
    for role in ("facilitator", "provider", "finance", "participant"):
        assert make_client(role, password=None).get(URL).status_code in (403, 404)
