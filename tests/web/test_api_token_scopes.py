"""API token scopes and refusals (issue #19 item 2): scopes only narrow what the role allows,
a missing scope is a 403 that names it, an expired or revoked token a 401 that says so, and a
refused call changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retreat.accounts import api_tokens
from retreat.accounts.models import ApiToken
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.messaging.webhook_models import WebhookEndpoint
from retreat.timeutil import now_utc
from tests import factories


def _bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def _make(role: str, **kw):
    token, raw = api_tokens.create_token(factories.user(role, password=None), name="t", **kw)
    _db.session.commit()
    return token, _bearer(raw)


def test_missing_scope_is_403_naming_it_and_writes_nothing(client, db):
    _t, h = _make("admin", scopes=["read:finance"])
    before = _db.session.query(WebhookEndpoint).count()
    r = client.post("/api/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x", "events": ["payment.succeeded"]},
                    headers=h)
    assert r.status_code == 403
    assert r.get_json()["error"] == "This token lacks the scope admin:webhooks."
    assert _db.session.query(WebhookEndpoint).count() == before
    assert client.get("/api/v1/webhook-endpoints", headers=h).status_code == 403
    assert client.get("/api/v1/payments", headers=h).status_code == 200  # the scope it holds works


def test_scoped_token_with_the_scope_and_unscoped_token_both_pass(client, db):
    _t, scoped = _make("admin", scopes=["admin:webhooks"])
    _t2, unscoped = _make("admin")
    assert client.get("/api/v1/webhook-endpoints", headers=scoped).status_code == 200
    assert client.get("/api/v1/webhook-endpoints", headers=unscoped).status_code == 200
    assert client.get("/api/v1/payments", headers=unscoped).status_code == 200


def test_scopes_never_widen_the_role(client, db):
    with pytest.raises(ValidationFailed, match="cannot hold the scope admin:webhooks"):
        api_tokens.create_token(factories.user("finance", password=None), name="t", scopes=["admin:webhooks"])
    with pytest.raises(ValidationFailed, match="cannot hold the scope read:finance"):
        api_tokens.create_token(factories.user("facilitator", password=None), name="t", scopes=["read:finance"])
    with pytest.raises(ValidationFailed, match="Unknown scope"):
        api_tokens.create_token(factories.user("admin", password=None), name="t", scopes=["write:everything"])
    with pytest.raises(ValidationFailed, match="at least one scope"):
        api_tokens.create_token(factories.user("admin", password=None), name="t", scopes=[])
    assert _db.session.query(ApiToken).count() == 0
    # a token whose user later loses the role keeps nothing the new role lacks
    token, h = _make("finance", scopes=["read:finance"])
    token.user.role = "facilitator"
    _db.session.commit()
    assert client.get("/api/v1/payments", headers=h).status_code == 403


def test_scopes_offered_per_role():
    assert [s.name for s in api_tokens.scopes_for_role("finance")] == ["read:finance"]
    assert "admin:webhooks" in [s.name for s in api_tokens.scopes_for_role("admin")]
    assert "read:finance" not in [s.name for s in api_tokens.scopes_for_role("facilitator")]
    assert api_tokens.scopes_for_role("participant") == []


@pytest.mark.parametrize("how, message", [("revoked", "This token was revoked."),
                                          ("expired", "This token has expired.")])
def test_revoked_or_expired_token_is_401_saying_why(client, db, how, message):
    token, h = _make("admin")
    assert client.get("/api/v1/webhook-endpoints", headers=h).status_code == 200
    if how == "revoked":
        api_tokens.revoke_token(token, actor=token.user)
    else:
        token.expires_at = now_utc() - timedelta(seconds=1)
    _db.session.commit()
    r = client.post("/api/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x", "events": ["payment.succeeded"]},
                    headers=h)
    assert r.status_code == 401 and r.get_json()["error"] == message
    assert r.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert _db.session.query(WebhookEndpoint).count() == 0


def test_unknown_token_is_401(client, db):
    r = client.get("/api/v1/payments", headers=_bearer("rt_nonsense"))
    assert r.status_code == 401 and r.get_json()["error"] == "This token is not valid."
    r = client.get("/api/v1/payments")
    assert r.status_code == 401 and "bearer token" in r.get_json()["error"]


def test_expiry_in_the_past_is_refused(db):
    with pytest.raises(ValidationFailed, match="future"):
        api_tokens.create_token(factories.user("admin", password=None), name="t",
                                expires_at=now_utc() - timedelta(days=1))
    with pytest.raises(ValidationFailed):
        api_tokens.expiry_from_days(0)


def test_openapi_names_the_scope(app):
    spec = app.extensions["retreat_openapi"].to_dict()
    op = spec["paths"]["/api/v1/payments"]["get"]
    assert op["x-required-scope"] == "read:finance"
    assert "lacks the scope read:finance" in op["responses"]["403"]["description"]
