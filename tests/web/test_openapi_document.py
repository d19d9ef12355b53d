"""The OpenAPI document says what the server does (issue #16, 26)."""

from __future__ import annotations

import pytest

from retreat.accounts import api_tokens
from retreat.timeutil import all_zones, is_valid_zone
from tests import factories
from tests import factories_clearance as fcl


@pytest.fixture()
def spec(client):
    return client.get("/api/v1/openapi.json").get_json()


def _ok_schema(spec, path, method="get"):
    responses = spec["paths"][path][method]["responses"]
    ok = next((responses[c] for c in ("200", "201", "202", "204") if c in responses), None)
    assert ok is not None, f"{method.upper()} {path} documents no success answer: {sorted(responses)}"
    return ok.get("content", {}).get("application/json", {}).get("schema")


def _component(spec, schema):
    return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]


def test_every_operation_documents_its_success_answer(spec):
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                _ok_schema(spec, path, method)


def test_csrf_token_and_clearance_answers_have_their_own_schemas(spec):
    assert _component(spec, _ok_schema(spec, "/api/v1/csrf-token"))["required"] == ["csrf_token"]
    listing = _component(spec, _ok_schema(spec, "/api/v1/clearance-requests"))
    assert "items" in listing["properties"]
    detail = _component(spec, _ok_schema(spec, "/api/v1/clearance-requests/{request_id}"))
    assert {"id", "status", "answers", "messages", "valid_until"} <= set(detail["properties"])


def test_clearance_answers_match_their_schemas(app, client, db):
    from retreat.blueprints.api.schemas import ClearanceDetailSchema, ClearanceListSchema

    s = fcl.setup()
    req = fcl.submit(s)
    _t, raw = api_tokens.create_token(s.provider, name="doc")
    db.session.commit()
    headers = {"Authorization": f"Bearer {raw}"}
    listing = client.get("/api/v1/clearance-requests", headers=headers).get_json()
    assert ClearanceListSchema().validate(listing) == {}
    assert listing["items"][0]["id"] == req.id
    detail = client.get(f"/api/v1/clearance-requests/{req.id}", headers=headers).get_json()
    assert ClearanceDetailSchema().validate(detail) == {}


def test_zone_parameters_are_the_servers_zone_names(spec):
    zones = sorted(z for z in all_zones() if is_valid_zone(z))
    slots = {p["name"]: p for p in spec["paths"]["/api/v1/consultations/slots"]["get"]["parameters"]}
    assert slots["tz"]["schema"]["enum"] == zones
    booking = spec["components"]["schemas"]["ConsultBookingRequest"]["properties"]
    assert booking["timezone"]["enum"] == zones
    assert spec["components"]["schemas"]["MeUpdate"]["properties"]["tz"]["enum"] == zones
    assert slots["start"]["schema"]["format"] == slots["end"]["schema"]["format"] == "date"
    assert "`start` <= `end`" in slots["end"]["description"]


def test_the_docs_page_names_the_zone_enum_without_listing_it(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "Pacific/Auckland" not in page
    assert "names (the OpenAPI document lists them)" in page


@pytest.mark.parametrize("body", [None, {}])
def test_patch_me_without_a_change_is_a_field_error(app, client, db, body):
    user = factories.user(role="facilitator", password=None)
    _t, raw = api_tokens.create_token(user, name="doc")
    db.session.commit()
    kwargs = {} if body is None else {"json": body}
    r = client.patch("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}, **kwargs)
    assert r.status_code == 422, r.get_data(as_text=True)
    assert set(r.get_json()["errors"]) == {"name", "tz"}
    r = client.patch("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}, json={"tz": "Europe/Paris"})
    assert r.status_code == 200 and r.get_json()["tz"] == "Europe/Paris"
