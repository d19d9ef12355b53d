"""Account settings: details, messages opt-out, password change, sign out everywhere."""

from __future__ import annotations

from retreat.accounts import passwords
from tests import factories
from tests.web.account_helpers import audit_actions, queued, signed_in

NEW = "a-fresh-long-password"


def test_settings_page_shows_every_section(app, db):
    c = signed_in(app, factories.user("participant", name="Sam"))
    html = c.get("/account/settings").get_data(as_text=True)
    for text in ("Your details", "Change your password", "Two-factor authentication", "Sign out everywhere",
                 "Only send me essential messages", 'value="Sam"'):
        assert text in html


def test_edit_details_and_opt_out(app, db):
    user = factories.user("participant", tz="America/Denver")
    c = signed_in(app, user)
    r = c.post("/account/settings", data={"profile-name": " Sam Stone ", "profile-tz": "Europe/Berlin",
                                          "profile-phone": "+1 (303) 555-0100", "profile-marketing_opt_out": "y"})
    assert r.status_code == 302
    assert (user.name, user.tz, user.phone, user.marketing_opt_out) == ("Sam Stone", "Europe/Berlin",
                                                                       "+1 (303) 555-0100", True)
    assert "user.profile_updated" in audit_actions(user.id)
    assert "Your details are saved" in c.get("/account/settings").get_data(as_text=True)


def test_bad_details_are_refused_and_nothing_changes(app, db):
    user = factories.user("participant", name="Sam", tz="America/Denver")
    c = signed_in(app, user)
    for data, message in [
        ({"profile-name": "", "profile-tz": "Europe/Berlin"}, "Enter your name"),
        ({"profile-name": "Sam", "profile-tz": "Nowhere/Land"}, "&#39;Nowhere/Land&#39; is not one we know"),
        ({"profile-name": "Sam", "profile-tz": "Europe/Berlin", "profile-phone": "call me maybe"}, "phone number"),
    ]:
        r = c.post("/account/settings", data=data)
        assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert (user.name, user.tz, user.phone) == ("Sam", "America/Denver", None)


def test_change_password_needs_current_and_keeps_this_device_signed_in(app, db):
    user = factories.user("participant", email="pw@example.com")
    c = signed_in(app, user)
    other = signed_in(app, user)
    r = c.post("/account/settings/password", data={"pw-current_password": "not-my-password",
                                                   "pw-password": NEW, "pw-confirm": NEW})
    assert r.status_code == 422 and "current password is not correct" in r.get_data(as_text=True)
    r = c.post("/account/settings/password", data={"pw-current_password": factories.PASSWORD,
                                                   "pw-password": "short", "pw-confirm": "short"})
    assert r.status_code == 422 and "at least 10 characters" in r.get_data(as_text=True)
    r = c.post("/account/settings/password", data={"pw-current_password": factories.PASSWORD,
                                                   "pw-password": NEW, "pw-confirm": NEW + "x"})
    assert r.status_code == 422 and "do not match" in r.get_data(as_text=True)
    assert passwords.verify_password(user, factories.PASSWORD) and queued("password_changed") == []
    r = c.post("/account/settings/password", data={"pw-current_password": factories.PASSWORD,
                                                   "pw-password": NEW, "pw-confirm": NEW})
    assert r.status_code == 302 and passwords.verify_password(user, NEW)
    assert c.get("/account/settings").status_code == 200
    assert other.get("/account/settings").status_code == 302
    [notice] = queued("password_changed", "pw@example.com")
    assert notice.context["name"] == user.name


def test_sign_out_everywhere_invalidates_other_clients(app, db):
    user = factories.user("facilitator")
    c, other = signed_in(app, user), signed_in(app, user)
    assert other.get("/account/settings").status_code == 200
    r = c.post("/account/settings/sign-out-everywhere")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login")
    assert other.get("/account/settings").status_code == 302
    assert c.get("/account/settings").status_code == 302
    assert "auth.logout_everywhere" in audit_actions(user.id)


def test_settings_need_sign_in(client, db):
    r = client.get("/account/settings")
    assert r.status_code == 302 and "/account/login" in r.headers["Location"]
    assert client.post("/account/settings/sign-out-everywhere").status_code == 302


def test_the_zone_picker_lists_canonical_zones_with_their_offsets_and_reads_an_old_alias(app, db):
    user = factories.user("participant", name="Sam", tz="Asia/Calcutta")  # saved before aliases were mapped
    c = signed_in(app, user)
    html = c.get("/account/settings").get_data(as_text=True)
    picker = html.split('name="profile-tz"', 1)[1].split("</select>", 1)[0]
    assert '<option selected value="Asia/Kolkata">' in picker and "Asia / Kolkata (UTC+05:30)" in picker
    for alias in ("Asia/Calcutta", "US/Mountain", "Etc/GMT+5", "America/Buenos_Aires"):
        assert f'value="{alias}"' not in picker, alias
    assert 300 < picker.count("<option") < 400 and "data-zone-picker" in html
    r = c.post("/account/settings", data={"profile-name": "Sam", "profile-tz": "US/Mountain"})
    assert r.status_code == 302 and user.tz == "America/Denver"  # an alias is saved as its canonical zone


def test_an_unknown_zone_is_refused_by_name_and_nothing_is_saved(app, db):
    user = factories.user("participant", name="Sam", tz="Europe/Berlin")
    c = signed_in(app, user)
    for bad in ("Mars/Olympus", "europe/berlin", "Etc/../../passwd", "x" * 300):
        r = c.post("/account/settings", data={"profile-name": "Ann", "profile-tz": bad})
        assert r.status_code == 422 and "Choose a time zone from the list" in r.get_data(as_text=True), bad
    assert (user.name, user.tz) == ("Sam", "Europe/Berlin")
