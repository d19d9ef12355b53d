"""JSON API frame: bearer auth, roles, endpoints, one error shape, OpenAPI and the docs page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retreat import audit
from retreat.accounts import api_tokens
from retreat.blueprints.api.schemas import ZONE_ERROR
from retreat.models import AuditEvent
from tests import factories


@pytest.fixture()
def api(app, db):
    """api(role or user) -> (client, headers) with a fresh personal token of that user."""

    def _make(who="admin", **kw):
        user = who if not isinstance(who, str) else factories.user(role=who, **{"password": None, **kw})
        _token, raw = api_tokens.create_token(user, name="test")
        db.session.commit()
        client = app.test_client()
        client.user = user
        return client, {"Authorization": f"Bearer {raw}"}

    return _make


def assert_error_shape(r, status):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.is_json
    body = r.get_json()
    assert isinstance(body["error"], str) and body["error"]
    assert set(body) <= {"error", "errors"}
    return body


def test_me_with_token_and_without(api, client, db):
    c, h = api("facilitator", name="Fern", tz="America/Denver")
    r = c.get("/api/v1/me", headers=h)
    assert r.status_code == 200
    assert r.get_json() == {"id": c.user.id, "email": c.user.email, "name": "Fern", "role": "facilitator",
                            "tz": "America/Denver"}
    assert r.headers["Cache-Control"] == "no-store"

    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/me", headers=headers)
        assert_error_shape(r, 401)
        assert r.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_session_cookie_does_not_authenticate_api(make_client, db):
    staff = make_client("admin", password=None)
    assert staff.get("/admin/").status_code == 200
    assert_error_shape(staff.get("/api/v1/me"), 401)


def test_wrong_role_gets_403(api, db):
    c, h = api("finance")
    assert_error_shape(c.get("/api/v1/users", headers=h), 403)
    assert_error_shape(c.get("/api/v1/audit-events", headers=h), 403)


def test_update_me_and_bad_bodies_change_nothing(api, app, db, monkeypatch):
    c, h = api("provider", name="Dr P", tz="UTC")
    user = c.user
    r = c.patch("/api/v1/me", json={"tz": "America/Denver", "name": " Dr Priya "}, headers=h)
    assert r.status_code == 200 and r.get_json()["tz"] == "America/Denver" and r.get_json()["name"] == "Dr Priya"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "user.profile_updated")) == 1

    body = assert_error_shape(c.patch("/api/v1/me", json={"tz": "Mars/Base"}, headers=h), 422)
    assert body["errors"] == {"tz": [ZONE_ERROR]}  # the one zone message of the API
    body = assert_error_shape(c.patch("/api/v1/me", json={"name": ""}, headers=h), 422)
    assert "name" in body["errors"]
    body = assert_error_shape(c.patch("/api/v1/me", json={"role": "admin"}, headers=h), 422)
    assert "role" in body["errors"]
    body = assert_error_shape(c.patch("/api/v1/me", data="{not json", content_type="application/json",
                                      headers=h), 400)
    assert "not valid JSON" in body["error"]
    assert_error_shape(c.patch("/api/v1/me", data="tz=UTC", content_type="application/x-www-form-urlencoded",
                               headers=h), 415)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    assert_error_shape(c.patch("/api/v1/me", json={"name": "x" * 5000}, headers=h), 413)
    db.session.refresh(user)
    assert (user.name, user.tz, user.role) == ("Dr Priya", "America/Denver", "provider")


def test_tokens_list_and_revoke_own_only(api, db):
    c, h = api("finance")
    other_c, other_h = api("finance")
    second, _raw = api_tokens.create_token(c.user, name="laptop")
    db.session.commit()
    r = c.get("/api/v1/tokens", headers=h)
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert {t["name"] for t in items} == {"test", "laptop"}
    assert all("hash" not in k for t in items for k in t)

    other_token = other_c.get("/api/v1/tokens", headers=other_h).get_json()["items"][0]
    assert_error_shape(c.delete(f"/api/v1/tokens/{other_token['id']}", headers=h), 404)
    assert other_c.get("/api/v1/me", headers=other_h).status_code == 200

    assert c.delete(f"/api/v1/tokens/{second.id}", headers=h).status_code == 204
    assert c.delete(f"/api/v1/tokens/{second.id}", headers=h).status_code == 204  # repeat: harmless
    assert second.revoked_at is not None
    own = next(t for t in items if t["name"] == "test")
    assert c.delete(f"/api/v1/tokens/{own['id']}", headers=h).status_code == 204
    assert_error_shape(c.get("/api/v1/me", headers=h), 401)  # revoked token no longer works


def test_users_filters_and_pagination(api, db):
    c, h = api("admin")
    factories.user("facilitator", name="Fern Gully", password=None)
    gone = factories.user("facilitator", name="Fern Gone", password=None, is_active_account=False)
    for i in range(5):
        factories.user("participant", name=f"Pat {i}", password=None)
    db.session.commit()
    r = c.get("/api/v1/users?q=fern&role=facilitator&active=true", headers=h)
    assert r.status_code == 200
    assert [u["name"] for u in r.get_json()["items"]] == ["Fern Gully"]
    r = c.get("/api/v1/users?q=fern&active=false", headers=h)
    assert [u["id"] for u in r.get_json()["items"]] == [gone.id]
    r = c.get("/api/v1/users?role=participant&per_page=2&page=3", headers=h)
    body = r.get_json()
    assert body["meta"] == {"page": 3, "per_page": 2, "total": 5, "pages": 3}
    assert [u["name"] for u in body["items"]] == ["Pat 4"]
    assert set(body["items"][0]) >= {"id", "email", "name", "role", "tz", "is_active", "totp_enabled"}
    assert "password_hash" not in body["items"][0]

    for query in ("role=wizard", "per_page=1000", "page=0", "active=maybe"):
        body = assert_error_shape(c.get(f"/api/v1/users?{query}", headers=h), 422)
        assert set(body["errors"]) == {query.split("=")[0]}


def test_audit_events_filters(api, db):
    c, h = api("admin")
    base = datetime(2026, 5, 1, tzinfo=UTC)
    audit.record("user.created", object_type="user", object_id=7, now=base)
    audit.record("auth.login", actor_email="x@example.com", now=base + timedelta(hours=1))
    db.session.commit()
    r = c.get("/api/v1/audit-events?action=user.", headers=h)
    items = r.get_json()["items"]
    assert [e["action"] for e in items] == ["user.created"] and items[0]["object_id"] == "7"
    since = (base + timedelta(minutes=30)).isoformat()
    r = c.get("/api/v1/audit-events", query_string={"since": since, "until": "2026-05-02T00:00:00+00:00"},
              headers=h)
    assert [e["action"] for e in r.get_json()["items"]] == ["auth.login"]
    body = assert_error_shape(c.get("/api/v1/audit-events?since=2026-05-01T00:00:00", headers=h), 422)
    assert "since" in body["errors"]


def test_unknown_route_and_wrong_method_are_json(client, api, db):
    body = assert_error_shape(client.get("/api/v1/nope"), 404)
    assert "errors" not in body
    c, h = api("admin")
    r = c.post("/api/v1/users", headers=h)
    assert_error_shape(r, 405)
    assert "GET" in r.headers["Allow"]


def test_openapi_declares_security_per_operation(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert "security" not in spec  # declared per operation, not globally
    checked = 0
    for rule in app.url_map.iter_rules():
        roles = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
        if not rule.rule.startswith("/api/") or not roles:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = spec["paths"][path][method.lower()]
            expected = "cookieAuth" if getattr(app.view_functions[rule.endpoint], "session_auth", False) else "bearerAuth"
            assert op["security"] == [{expected: []}], (path, method)
            assert {"401", "403"} <= set(op["responses"]), (path, method)
            checked += 1
    assert checked >= 6
    assert spec["components"]["schemas"]["Error"]["properties"].keys() == {"error", "errors"}


def test_docs_page_is_public_and_self_contained(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for text in ("/api/v1/me", "PATCH", "/api/v1/tokens/{token_id}", "/api/v1/audit-events",
                 "Who the token belongs to", "per_page", "MeUpdate", "Authorization: Bearer"):
        assert text in page, text
    # Only the app's own scripts (the menu, from /static): nothing inline, nothing from elsewhere.
    assert not re.search(r'<script(?![^>]*\bsrc="/static/)', page), "inline or foreign script"
    assert "style=" not in page and "cdn" not in page.lower()
