"""The account pages for API tokens (issue #19 item 2): staff list, create (scopes limited to the
role, an expiry choice, the secret shown once and never cached) and revoke their own tokens;
the CLI takes --scope and --expires-days; participants are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.accounts import api_tokens
from retreat.accounts.models import ApiToken
from retreat.extensions import db as _db
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


def _tokens(user):
    _db.session.expire_all()
    return list(_db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))


def test_create_shows_the_secret_once_and_it_works(app, db):
    admin = factories.user("admin", password=None)
    c = signed_in(app, admin)
    page = c.get("/account/api-tokens")
    assert page.status_code == 200 and b"admin:webhooks" in page.data and b"read:finance" in page.data
    r = c.post("/account/api-tokens", data={"token-name": "Zapier", "token-scopes": ["admin:webhooks"],
                                            "token-expires": "30"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    (token,) = _tokens(admin)
    assert token.scopes == ["admin:webhooks"] and token.name == "Zapier"
    assert timedelta(days=29) < token.expires_at - now_utc() <= timedelta(days=30)
    raw = r.get_data(as_text=True).split('id="token-secret" class="input-wide" type="text" value="')[1].split('"')[0]
    assert raw.startswith("rt") and raw[:10] == token.prefix
    api = app.test_client()
    assert api.get("/api/v1/webhook-endpoints", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    assert api.get("/api/v1/payments", headers={"Authorization": f"Bearer {raw}"}).status_code == 403
    listing = c.get("/account/api-tokens").get_data(as_text=True)
    assert "Zapier" in listing and token.prefix in listing and raw not in listing and "active" in listing


def test_finance_sees_only_its_scopes_and_cannot_forge_others(app, db):
    fin = factories.user("finance", password=None)
    c = signed_in(app, fin)
    page = c.get("/account/api-tokens").get_data(as_text=True)
    assert "read:finance" in page and "admin:webhooks" not in page and "read:roster" not in page
    r = c.post("/account/api-tokens", data={"token-name": "x", "token-scopes": ["admin:webhooks"],
                                            "token-expires": "90"})
    assert r.status_code == 422 and _tokens(fin) == []


@pytest.mark.parametrize("data, message", [
    ({"token-name": "", "token-scopes": ["read:finance"], "token-expires": "90"}, "Name the token"),
    ({"token-name": "x", "token-expires": "90"}, "Choose at least one scope."),
    ({"token-name": "x", "token-scopes": ["read:finance"], "token-expires": "7"}, "Not a valid choice"),
])
def test_bad_create_is_422_with_a_message_and_writes_nothing(app, db, data, message):
    admin = factories.user("admin", password=None)
    c = signed_in(app, admin)
    r = c.post("/account/api-tokens", data=data)
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert _tokens(admin) == []


def test_revoke_own_token_is_audited_and_others_are_404(app, db):
    admin = factories.user("admin", password=None)
    other = factories.user("admin", password=None)
    mine, raw = api_tokens.create_token(admin, name="mine")
    theirs, _ = api_tokens.create_token(other, name="theirs", expires_at=now_utc() + timedelta(days=1))
    _db.session.commit()
    c = signed_in(app, admin)
    assert c.post(f"/account/api-tokens/{theirs.id}/revoke", data={}).status_code == 404
    r = c.post(f"/account/api-tokens/{mine.id}/revoke", data={})
    assert r.status_code == 303
    _db.session.expire_all()
    assert mine.revoked_at is not None and theirs.revoked_at is None
    assert _db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.revoked",
                                                       AuditEvent.object_id == str(mine.id))) is not None
    assert app.test_client().get("/api/v1/payments", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert "revoked" in c.get("/account/api-tokens").get_data(as_text=True)


def test_participants_get_403(app, db):
    c = signed_in(app, factories.user("participant", password=None))
    assert c.get("/account/api-tokens").status_code == 403
    assert c.post("/account/api-tokens", data={"token-name": "x"}).status_code == 403
    assert "API tokens" not in c.get("/account/settings").get_data(as_text=True)


def test_settings_links_staff_to_the_token_page(app, db):
    c = signed_in(app, factories.user("facilitator", password=None))
    assert "/account/api-tokens" in c.get("/account/settings").get_data(as_text=True)


def test_token_page_statement_count_is_bounded(app, db):
    admin = factories.user("admin", password=None)
    for i in range(6):
        api_tokens.create_token(admin, name=f"t{i}", scopes=["read:finance"])
    _db.session.commit()
    c = signed_in(app, admin)
    c.get("/account/api-tokens")
    with counting() as statements:
        assert c.get("/account/api-tokens").status_code == 200
    assert len(statements) <= 8, statements


def test_cli_scope_and_expiry(app, db):
    admin = factories.user("admin", password=None)
    _db.session.commit()
    runner = app.test_cli_runner()
    r = runner.invoke(args=["tokens", "create", "--email", admin.email, "--scope", "read:finance",
                            "--scope", "admin:webhooks", "--expires-days", "10"])
    assert r.exit_code == 0, r.output
    assert "read:finance, admin:webhooks" in r.output
    (token,) = _tokens(admin)
    assert token.scopes == ["read:finance", "admin:webhooks"]
    assert timedelta(days=9) < token.expires_at - now_utc() <= timedelta(days=10)
    bad = runner.invoke(args=["tokens", "create", "--email", admin.email, "--scope", "write:everything"])
    assert bad.exit_code != 0 and "Unknown scope" in bad.output
    fin = factories.user("finance", password=None)
    _db.session.commit()
    bad = runner.invoke(args=["tokens", "create", "--email", fin.email, "--scope", "admin:webhooks"])
    assert bad.exit_code != 0 and "cannot hold" in bad.output
    assert len(_tokens(admin)) == 1 and _tokens(fin) == []
    full = runner.invoke(args=["tokens", "create", "--email", fin.email])
    assert full.exit_code == 0 and "all of the role" in full.output and _tokens(fin)[0].scopes is None


HOSTILE = ["", " ", "x" * 5000, "\x00", "2147483648", "-1", "0", "NaN", "[]", "<script>", "😀",
           "read:finance", "admin:webhooks"]


@pytest.mark.parametrize("field", ["token-name", "token-scopes", "token-expires"])
def test_hostile_values_never_500_and_refusals_write_nothing(app, db, field):
    fin = factories.user("finance", password=None)
    c = signed_in(app, fin)
    made = 0
    for value in HOSTILE:
        data = {"token-name": "ok", "token-scopes": ["read:finance"], "token-expires": "30", field: value}
        r = c.post("/account/api-tokens", data=data)
        assert r.status_code in (200, 400, 422), (field, value, r.status_code)
        made += r.status_code == 200
        assert len(_tokens(fin)) == made, (field, value)
    if field == "token-scopes":
        assert made == 1  # only read:finance passes for a finance user
    elif field == "token-expires":
        assert made == 0
