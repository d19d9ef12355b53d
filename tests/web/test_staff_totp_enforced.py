"""Required staff two-factor holds for every cookie-signed request, whatever it accepts (issue #16
item 3, invariant 8); API-token requests are not affected; on by default in production."""

from __future__ import annotations

import pytest

from retreat.accounts import api_tokens
from retreat.accounts import users as accounts
from retreat.config import load_config
from retreat.web.hooks import TOTP_EXEMPT
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER

JSON = {"Accept": "application/json"}


@pytest.fixture()
def required(db):
    accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1")
    db.session.commit()


@pytest.fixture()
def s(db):
    s = fcl.setup()
    s.request = fcl.submit(s, medications=MARKER)
    db.session.commit()
    return s


def _pages(s, make_client):
    finance, admin = make_client("finance", password=None), make_client("admin", password=None)
    provider = make_client(s.provider)
    return [(finance, "/finance/"), (finance, "/finance/exports/ledger.csv"),
            (provider, f"/provider/requests/{s.request.id}"), (admin, "/admin/users"),
            (admin, "/admin/audit/export.csv")]


def test_json_accept_does_not_skip_required_two_factor(required, s, make_client):
    for c, url in _pages(s, make_client):
        r = c.get(url, headers=JSON)
        assert r.status_code == 403, url
        body = r.get_json()
        assert "two-factor" in body["error"].lower() and "two_factor" in body["errors"], url
        assert MARKER.encode() not in r.data


def test_html_requests_are_sent_to_the_setup_page(required, s, make_client):
    for c, url in _pages(s, make_client):
        r = c.get(url)
        assert r.status_code == 302 and r.headers["Location"].endswith("/account/two-factor/setup"), url
    c = make_client("finance", password=None)
    assert c.get("/account/two-factor/setup").status_code == 200  # the way out stays open


def test_the_policy_cannot_be_switched_off_by_asking_for_json(required, make_client, db):
    admin = make_client("admin", password=None)
    r = admin.post("/admin/settings", data={}, headers=JSON)  # the unticked box: "not required"
    assert r.status_code == 403
    assert accounts.get_setting(accounts.REQUIRE_STAFF_TOTP) == "1" and accounts.staff_totp_required()


def test_api_token_requests_are_not_affected(required, s, client):
    _, raw = api_tokens.create_token(s.provider, name="t")
    r = client.get("/api/v1/clearance-requests", headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 200


def test_staff_with_two_factor_and_participants_pass(required, s, make_client, db):
    provider = make_client(s.provider)
    s.provider.totp_secret, s.provider.totp_enabled_at = "JBSWY3DPEHPK3PXP", s.now
    db.session.commit()
    assert provider.get(f"/provider/requests/{s.request.id}", headers=JSON).status_code == 200
    assert make_client("participant").get("/account/settings", headers=JSON).status_code == 200


def test_every_exempt_name_is_a_real_endpoint(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert TOTP_EXEMPT <= endpoints, TOTP_EXEMPT - endpoints
    assert "healthz" in TOTP_EXEMPT


def test_required_by_default_in_production(app, make_client, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.delenv("REQUIRE_STAFF_TOTP", raising=False)
    assert load_config({"ENV_NAME": "production"})["REQUIRE_STAFF_TOTP_DEFAULT"] is True
    assert load_config({"ENV_NAME": "development"})["REQUIRE_STAFF_TOTP_DEFAULT"] is False
    monkeypatch.setenv("REQUIRE_STAFF_TOTP", "0")  # an explicit choice wins
    assert load_config({"ENV_NAME": "production"})["REQUIRE_STAFF_TOTP_DEFAULT"] is False
    # No admin decision stored: the config's default decides.
    assert accounts.get_setting(accounts.REQUIRE_STAFF_TOTP) is None
    assert not accounts.staff_totp_required()
    monkeypatch.setitem(app.config, "REQUIRE_STAFF_TOTP_DEFAULT", True)
    assert accounts.staff_totp_required()
    assert make_client("finance", password=None).get("/finance/", headers=JSON).status_code == 403
