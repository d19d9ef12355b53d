"""Admin console: users, roles, sessions, two-factor, licences, organisations, settings."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from retreat.accounts import users as accounts
from retreat.models import AuditEvent, ProviderLicense, ProviderOrganization, User
from tests import factories
from tests.conftest import login_as


def audit_count(db, action: str) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def user_count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_users_list_search_role_filter_and_pages(make_client, db):
    admin = make_client("admin", password=None, name="Ada Admin")
    factories.user("facilitator", name="Fern Gully", email="fern@example.com", password=None)
    factories.user("finance", name="Finn Ledger", email="ledger@example.com", password=None)
    for i in range(30):
        factories.user("participant", name=f"Zed Person {i:02d}", password=None)

    r = admin.get("/admin/users?q=FERN")
    assert r.status_code == 200
    assert b"Fern Gully" in r.data and b"Finn Ledger" not in r.data
    r = admin.get("/admin/users?q=ledger@")
    assert b"Finn Ledger" in r.data and b"Fern Gully" not in r.data
    r = admin.get("/admin/users?role=finance")
    assert b"Finn Ledger" in r.data and b"Fern Gully" not in r.data

    first = admin.get("/admin/users?role=participant").get_data(as_text=True)
    assert "30 users" in first and "Page 1 of 2" in first and "Zed Person 00" in first
    second = admin.get("/admin/users?role=participant&page=2").get_data(as_text=True)
    assert "Zed Person 29" in second and "Zed Person 00" not in second
    assert "role=participant" in second  # the filter survives paging

    assert admin.get("/admin/users?role=wizard").status_code == 422  # unknown role: form error, no crash
    assert admin.get("/admin/users?page=abc").status_code == 200


def test_create_staff_account_shows_one_time_password_once(make_client, app, db):
    admin = make_client("admin", password=None)
    org = factories.provider_org("Mesa Clinic")
    r = admin.post("/admin/users/new", data={"name": "Dr Rowan", "email": " Rowan@Example.com ", "role": "provider",
                                             "tz": "America/Denver", "provider_organization": str(org.id)})
    assert r.status_code == 201
    user = accounts.get_by_email("rowan@example.com")
    assert user is not None and user.role == "provider" and user.provider_organization_id == org.id
    assert user.email_verified
    page = r.get_data(as_text=True)
    marker = 'data-testid="one-time-password">'
    password = page.split(marker, 1)[1].split("<", 1)[0]
    assert len(password) >= 12
    assert r.headers["Cache-Control"] == "no-store"
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.created"))
    assert ev.actor_id == admin.user.id and ev.object_id == str(user.id)
    # The password is not shown again anywhere.
    assert password not in admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    # The new person can sign in with it.
    c = app.test_client()
    assert c.post("/account/login", data={"email": "rowan@example.com", "password": password}).status_code == 302


def test_bad_staff_account_input_shows_errors_and_changes_nothing(make_client, db):
    admin = make_client("admin", password=None)
    factories.user("facilitator", email="taken@example.com", password=None)
    db.session.commit()  # set-up data survives the view's rollback (a savepoint in tests)
    before, audits = user_count(db), audit_count(db, "user.created")
    cases = [
        ({"email": "TAKEN@example.com", "role": "facilitator"}, "already exists"),
        ({"email": "new1@example.com", "role": "wizard"}, "Not a valid choice"),
        ({"email": "new2@example.com", "role": "participant"}, "Not a valid choice"),
        ({"email": "new3@example.com", "role": "provider"}, "provider organisation"),
        ({"email": "new4@example.com", "role": "provider", "provider_organization": "999999"}, "Not a valid choice"),
        ({"email": "not-an-email", "role": "finance"}, "Invalid email"),
        ({"email": "new5@example.com", "role": "finance", "tz": "Mars/Olympus"}, "is not one we know"),
    ]
    for data, message in cases:
        form = {"name": "Someone", "tz": "UTC", "provider_organization": "", **data}
        r = admin.post("/admin/users/new", data=form)
        assert r.status_code == 422, data
        assert message in r.get_data(as_text=True), (data, message)
    assert user_count(db) == before and audit_count(db, "user.created") == audits


def test_change_role_ends_sessions_and_is_audited(make_client, app, db):
    admin = make_client("admin", password=None)
    target = make_client("facilitator", password=None)
    user = target.user
    assert target.get("/facilitator/").status_code == 200
    r = admin.post(f"/admin/users/{user.id}/role", data={"role": "finance", "provider_organization": ""})
    assert r.status_code == 302
    assert user.role == "finance"
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.role_changed"))
    assert ev.details == {"from": "facilitator", "to": "finance"} and ev.actor_id == admin.user.id
    assert target.get("/finance/").status_code == 302  # old session ended: back to sign-in

    # provider without organisation: form error, nothing changes
    r = admin.post(f"/admin/users/{user.id}/role", data={"role": "provider", "provider_organization": ""})
    assert r.status_code == 422 and "provider organisation" in r.get_data(as_text=True)
    assert user.role == "finance"
    r = admin.post(f"/admin/users/{user.id}/role", data={"role": "overlord"})
    assert r.status_code == 422 and user.role == "finance"


def test_admin_cannot_demote_or_deactivate_themselves(make_client, db):
    admin = make_client("admin", password=None)
    me = admin.user
    r = admin.post(f"/admin/users/{me.id}/role", data={"role": "participant", "provider_organization": ""})
    assert r.status_code == 422 and "cannot remove your own admin role" in r.get_data(as_text=True)
    assert me.role == "admin" and audit_count(db, "user.role_changed") == 0
    r = admin.post(f"/admin/users/{me.id}/active", data={"value": "0"}, follow_redirects=True)
    assert "cannot deactivate your own account" in r.get_data(as_text=True)
    assert me.is_active


def test_deactivate_reactivate_sign_out_and_reset_totp(make_client, db):
    admin = make_client("admin", password=None)
    target = make_client("finance", password=None, totp_secret="JBSWY3DPEHPK3PXP", totp_enabled_at=accounts.now_utc())
    user = target.user
    assert target.get("/finance/").status_code == 200

    admin.post(f"/admin/users/{user.id}/active", data={"value": "0"})
    assert not user.is_active and audit_count(db, "user.deactivated") == 1
    assert target.get("/finance/").status_code == 302
    admin.post(f"/admin/users/{user.id}/active", data={"value": "1"})
    assert user.is_active and audit_count(db, "user.activated") == 1

    login_as(admin.application, target, user)
    assert target.get("/finance/").status_code == 200
    r = admin.post(f"/admin/users/{user.id}/sign-out", follow_redirects=True)
    assert "signed out everywhere" in r.get_data(as_text=True)
    assert target.get("/finance/").status_code == 302
    assert audit_count(db, "user.signed_out_everywhere") == 1

    r = admin.post(f"/admin/users/{user.id}/reset-totp")
    assert r.status_code == 302
    assert not user.totp_enabled and user.totp_secret is None
    assert audit_count(db, "user.totp_reset") == 1
    admin.post(f"/admin/users/{user.id}/reset-totp")  # repeating is a no-op
    assert audit_count(db, "user.totp_reset") == 1


def test_provider_licences_valid_and_expired_and_bad_dates(make_client, db):
    admin = make_client("admin", password=None)
    provider = factories.user("provider", password=None)
    lic_old = ProviderLicense(user=provider, number="OLD-1", state="NM", kind="DO",
                              expires_on=date.today() - timedelta(days=1))
    db.session.add(lic_old)
    db.session.flush()
    page = admin.get(f"/admin/users/{provider.id}").get_data(as_text=True)
    assert "OLD-1" in page and "expired" in page and "valid" in page

    count = len(provider.licenses)
    for bad in ("31/12/2030", "2030-13-01", "", "soon"):
        r = admin.post(f"/admin/users/{provider.id}/licenses",
                       data={"number": "N-9", "state": "CO", "kind": "MD", "expires_on": bad})
        assert r.status_code == 422, bad
        assert "YYYY-MM-DD" in r.get_data(as_text=True)
    r = admin.post(f"/admin/users/{provider.id}/licenses",
                   data={"number": "N-9", "state": "CO", "kind": "Wizard", "expires_on": "2030-01-01"})
    assert r.status_code == 422
    db.session.expire(provider)
    assert len(provider.licenses) == count

    r = admin.post(f"/admin/users/{provider.id}/licenses",
                   data={"number": "N-9", "state": "CO", "kind": "NP", "expires_on": "2030-01-01"})
    assert r.status_code == 302
    db.session.expire(provider)
    added = [lic for lic in provider.licenses if lic.number == "N-9"]
    assert len(added) == 1 and added[0].state == "CO" and added[0].expires_on == date(2030, 1, 1)
    assert audit_count(db, "provider_license.added") == 1
    r = admin.post(f"/admin/users/{provider.id}/licenses",
                   data={"number": "N-9", "state": "CO", "kind": "NP", "expires_on": "2031-01-01"})
    assert r.status_code == 422 and "already has that licence" in r.get_data(as_text=True)

    facilitator = factories.user("facilitator", password=None)
    r = admin.post(f"/admin/users/{facilitator.id}/licenses",
                   data={"number": "X", "state": "CO", "kind": "MD", "expires_on": "2030-01-01"})
    assert r.status_code == 422 and "Only providers" in r.get_data(as_text=True)


def test_provider_organisations_create_edit_deactivate(make_client, db):
    admin = make_client("admin", password=None)
    r = admin.post("/admin/organizations/new", data={"name": "Aspen Health", "contact_email": "Hi@Aspen.example",
                                                     "phone": "+1 303 555 0100"})
    assert r.status_code == 302
    org = db.session.scalar(select(ProviderOrganization).where(ProviderOrganization.name == "Aspen Health"))
    assert org.contact_email == "hi@aspen.example" and org.phone == "+1 303 555 0100"
    member = factories.user("provider", org=org, name="Dr Member", password=None)

    page = admin.get(f"/admin/organizations/{org.id}").get_data(as_text=True)
    assert "Dr Member" in page
    assert "Aspen Health" in admin.get("/admin/organizations").get_data(as_text=True)

    r = admin.post(f"/admin/organizations/{org.id}", data={"name": "Aspen Health", "contact_email": "desk@aspen.example",
                                                           "phone": ""})
    assert r.status_code == 302 and org.contact_email == "desk@aspen.example" and org.phone is None
    assert audit_count(db, "provider_org.updated") == 1

    factories.provider_org("Birch Clinic")
    db.session.commit()
    for data in ({"name": "birch clinic"}, {"name": ""}, {"name": "Aspen Health", "contact_email": "nope"}):
        r = admin.post(f"/admin/organizations/{org.id}", data={"contact_email": "", "phone": "", **data})
        assert r.status_code == 422, data
    assert org.name == "Aspen Health" and org.contact_email == "desk@aspen.example"
    assert admin.post("/admin/organizations/new", data={"name": "BIRCH CLINIC"}).status_code == 422

    admin.post(f"/admin/organizations/{org.id}/active", data={"value": "0"})
    assert org.is_active is False and audit_count(db, "provider_org.deactivated") == 1
    # a deactivated organisation is no longer offered for new providers
    r = admin.post("/admin/users/new", data={"name": "Dr New", "email": "new@example.com", "role": "provider",
                                             "tz": "UTC", "provider_organization": str(org.id)})
    assert r.status_code == 422
    assert member.provider_organization_id == org.id


def test_require_staff_totp_setting(make_client, db):
    # This admin has two-factor, so the setting does not send them to set it up.
    admin = make_client("admin", password=None, totp_secret="JBSWY3DPEHPK3PXP", totp_enabled_at=accounts.now_utc())
    assert not accounts.staff_totp_required()
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert "Require two-factor" in page
    r = admin.post("/admin/settings", data={"require_staff_totp": "y"})
    assert r.status_code == 302
    assert accounts.staff_totp_required()
    assert audit_count(db, "setting.changed") == 1
    r = admin.post("/admin/settings", data={})
    assert not accounts.staff_totp_required()
    assert accounts.get_setting(accounts.REQUIRE_STAFF_TOTP) == "0"


def test_organisation_service_reports_bad_contact_email_on_its_field(db):
    from retreat.accounts import admin as admin_users
    from retreat.core.errors import ValidationFailed

    admin = factories.user("admin", password=None)
    org = factories.provider_org("Cedar Clinic")
    with pytest.raises(ValidationFailed) as caught:
        admin_users.update_organization(org, name="Cedar Clinic", contact_email="not an email", phone=None,
                                        actor=admin)
    assert set(caught.value.errors) == {"contact_email"}
    assert org.contact_email is None


def test_licence_state_is_a_region_code_and_an_expired_licence_warns(make_client, db):
    admin = make_client("admin", password=None)
    provider = factories.user("provider", password=None)
    page = admin.get(f"/admin/users/{provider.id}").get_data(as_text=True)
    assert '<option value="CO">Colorado (CO)</option>' in page
    before = {(lic.number, lic.state) for lic in provider.licenses}
    for bad in ("COLORADO", "Atlantis", "XX", ""):
        r = admin.post(f"/admin/users/{provider.id}/licenses",
                       data={"number": "S-1", "state": bad, "kind": "MD", "expires_on": "2030-01-01"})
        assert r.status_code == 422, bad
    db.session.expire(provider)
    assert {(lic.number, lic.state) for lic in provider.licenses} == before

    r = admin.post(f"/admin/users/{provider.id}/licenses",
                   data={"number": "S-1", "state": "CA-BC", "kind": "RN", "expires_on": "2030-01-01"},
                   follow_redirects=True)
    assert "Licence added." in r.get_data(as_text=True)
    past = (date.today() - timedelta(days=3)).isoformat()
    r = admin.post(f"/admin/users/{provider.id}/licenses",
                   data={"number": "S-2", "state": "CO", "kind": "MD", "expires_on": past}, follow_redirects=True)
    text = r.get_data(as_text=True)
    assert "but it expired on" in text and "does not count" in text
    db.session.expire(provider)
    assert {(lic.number, lic.state) for lic in provider.licenses} - before == {("S-1", "CA-BC"), ("S-2", "CO")}


def test_the_licence_rule_stores_codes_for_names_and_refuses_unknown_regions(db):
    from retreat.core.errors import ValidationFailed
    provider = factories.user("provider", password=None)
    lic = accounts.add_license(provider, number="N-1", state=" colorado ", expires_on=date(2030, 1, 1))
    assert lic.state == "CO"
    assert accounts.add_license(provider, number="N-2", state="nm", expires_on=date(2030, 1, 1)).state == "NM"
    with pytest.raises(ValidationFailed) as err:
        accounts.add_license(provider, number="N-3", state="Narnia", expires_on=date(2030, 1, 1))
    assert err.value.field == "state"
