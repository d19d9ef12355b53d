"""Bad input gets a clear 4xx and changes nothing (issue #16, items 8 and 9; invariant 7).

Item 8: a NUL (or another C0 control character, or a lone surrogate) in any form field, query
argument, path or JSON string is refused in one place (``retreat.web.inputs``) with a 400 that
names the field. Item 9: an id past an Integer column's range in any ``<int:...>`` route is a 404.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter

from retreat.accounts import api_tokens
from retreat.accounts.models import User
from retreat.database import INT_MAX
from retreat.web.inputs import has_forbidden_characters
from tests import factories

NUL = "\x00"


def _url_for_rule(rule, int_value: int = 1) -> str:
    parts = {}
    for name, conv in rule._converters.items():
        parts[name] = int_value if isinstance(conv, IntegerConverter) else "x"
    return rule.build(parts)[1]


def _rules(app, method: str, *, with_int: bool = False):
    for rule in app.url_map.iter_rules():
        if method not in (rule.methods or ()) or rule.endpoint in ("static", "webhooks.stripe_webhook"):
            continue
        if with_int and not any(isinstance(c, IntegerConverter) for c in rule._converters.values()):
            continue
        yield rule


def test_forbidden_characters_are_c0_controls_and_lone_surrogates_not_tab_newline_cr():
    assert not has_forbidden_characters("a\tb\nc\r\nd é ✓ 😀")
    for bad in ("x\x00", "\x01", "\x08", "\x0b", "\x1f", "\ud800"):
        assert has_forbidden_characters(bad), repr(bad)


def test_nul_in_any_post_form_is_refused_naming_the_field(app, client):
    rules = list(_rules(app, "POST"))
    assert len(rules) > 40
    for rule in rules:
        r = client.post(_url_for_rule(rule), data={"note_text": f"a{NUL}b"})
        assert r.status_code == 400, (rule.rule, r.status_code)
        assert "note_text" in r.get_data(as_text=True), rule.rule


def test_nul_in_json_body_is_refused_with_field_errors(app, client):
    r = client.post("/api/v1/consultations", json={"name": f"Ann{NUL}", "extra": {"nested": ["ok", "x\x07"]}})
    assert r.status_code == 400
    body = r.get_json()
    assert set(body["errors"]) == {"name", "extra.nested[1]"} and "NUL" in body["error"]


@pytest.mark.parametrize("url", ["/api/v1/users?q=x%00", "/api/v1/audit-events?object_type=x%00"])
def test_nul_in_api_query_strings_is_a_400_naming_the_argument(app, client, url):
    _t, raw = api_tokens.create_token(factories.user(role="admin", password=None), name="t")
    r = client.get(url, headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 400
    assert list(r.get_json()["errors"]) == [url.split("?")[1].split("=")[0]]


def test_nul_in_a_page_query_string_and_path_is_a_400(client):
    assert client.get("/retreats?q=a%00").status_code == 400
    assert client.get("/account/reset-password/ab%00cd").status_code == 400


def test_nul_in_account_name_changes_nothing(app, db, make_client):
    c = make_client("participant", name="Original Name")
    r = c.post("/account/settings", data={"profile-name": f"New{NUL}Name", "profile-tz": "America/Denver"})
    assert r.status_code == 400 and "profile-name" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, c.user.id).name == "Original Name"


def test_every_int_route_is_bounded_to_an_integer_column(app):
    rules = list(_rules(app, "GET", with_int=True)) + list(_rules(app, "POST", with_int=True))
    assert len(rules) > 40
    for rule in rules:
        for conv in rule._converters.values():
            if isinstance(conv, IntegerConverter):
                assert conv.max == INT_MAX, rule.rule


@pytest.mark.parametrize("role", [None, "admin"])
def test_ids_past_int_max_are_404_on_every_int_route(app, db, make_client, client, role):
    c = make_client(role) if role else client
    for method in ("GET", "POST"):
        for rule in _rules(app, method, with_int=True):
            for too_big in (INT_MAX + 1, 154407627684127):
                r = c.open(_url_for_rule(rule, too_big), method=method)
                assert r.status_code == 404, (method, rule.rule, r.status_code)


def test_int_max_itself_still_routes_and_is_not_a_server_error(app, db, make_client):
    c = make_client("admin")
    for rule in _rules(app, "GET", with_int=True):
        r = c.get(_url_for_rule(rule, INT_MAX))
        assert r.status_code < 500, (rule.rule, r.status_code)
    assert db.session.scalar(select(func.count(User.id))) >= 1
