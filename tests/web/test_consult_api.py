"""GET /api/v1/consultations/slots and POST /api/v1/consultations."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retreat import create_app
from retreat.consults import booking as bookings
from retreat.consults import slots as free_times
from retreat.extensions import db, limiter
from retreat.models import Consultation
from retreat.timeutil import now_utc
from tests.conftest import base_config
from tests.links import follow_link
from tests.unit.test_consult_support import (
    BASE_URL,
    around_the_clock_facilitator,
    facilitator_with_hours,
    guest,
)

SLOTS = "/api/v1/consultations/slots"
BOOK = "/api/v1/consultations"


_fac = around_the_clock_facilitator


def _body(start, **kw) -> dict:
    body = {"start": start.isoformat(), "name": "Grace Guest", "email": "grace@example.com",
            "timezone": "Asia/Kolkata", "phone": "+91 98765 43210", "answers": {"pregnancy": "no"}}
    body.update(kw)
    return body


def _count():
    return db.session.scalar(select(func.count(Consultation.id)))


def _next(after_hours=26):
    now = now_utc()
    return free_times.next_free_slots(now + timedelta(hours=after_hours), now, limit=1)[0].start


def test_slots_in_the_visitor_zone(client, db):
    fac = facilitator_with_hours(hours="09:00-10:00", min_notice_minutes=60)  # Denver
    db.session.commit()
    today = now_utc().date()
    r = client.get(SLOTS, query_string={"start": today.isoformat(), "end": (today + timedelta(days=6)).isoformat(),
                                        "tz": "Asia/Kolkata"})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    slots = r.get_json()["slots"]
    assert len(slots) >= 10
    for s in slots:
        assert set(s) == {"start", "end", "facilitator_id"} and s["facilitator_id"] == fac.id
        start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
        assert s["start"].endswith("+05:30") and end - start == timedelta(minutes=30)
        assert start.minute in (0, 30) and start.hour in (20, 21, 22)
    assert [s["start"] for s in slots] == sorted(s["start"] for s in slots)
    only = client.get(SLOTS, query_string={"start": today.isoformat(), "end": today.isoformat(), "tz": "UTC",
                                           "facilitator_id": fac.id + 1000})
    assert only.status_code == 200 and only.get_json() == {"slots": []}


@pytest.mark.parametrize("query, field", [
    ({"start": "2026-02-30", "end": "2026-03-02", "tz": "UTC"}, "start"),
    ({"start": "2026-03-01", "end": "tomorrow", "tz": "UTC"}, "end"),
    ({"start": "2026-03-01", "end": "2026-05-02", "tz": "UTC"}, "end"),  # 63 days
    ({"start": "2026-03-05", "end": "2026-03-01", "tz": "UTC"}, "end"),
    ({"start": "2026-03-01", "end": "2026-03-02", "tz": "Mars/Olympus_Mons"}, "tz"),
    ({"start": "2026-03-01", "end": "2026-03-02"}, "tz"),
    ({"end": "2026-03-02", "tz": "UTC"}, "start"),
    ({"start": "2026-03-01", "end": "2026-03-02", "tz": "UTC", "facilitator_id": "abc"}, "facilitator_id"),
])
def test_slots_bad_queries_are_422_with_field_errors(client, db, query, field):
    r = client.get(SLOTS, query_string=query)
    body = r.get_json()
    assert r.status_code == 422 and body["error"] and field in body["errors"]


def test_sixty_two_days_is_allowed(client, db):
    r = client.get(SLOTS, query_string={"start": "2026-03-01", "end": "2026-05-01", "tz": "UTC"})
    assert r.status_code == 200


def test_booking_through_the_api(client, db):
    fac = _fac()
    start = _next()
    r = client.post(BOOK, json=_body(start, facilitator_id=fac.id, reason="Curious", heard_from="Podcast"))
    assert r.status_code == 201 and "Set-Cookie" not in r.headers
    body = r.get_json()
    assert set(body) == {"id", "start", "end", "facilitator_id", "manage_url"}
    assert body["facilitator_id"] == fac.id and body["start"].endswith("+05:30")
    assert datetime.fromisoformat(body["start"]) == start
    c = db.session.get(Consultation, body["id"])
    assert c.booked_via == "api" and c.guest_tz == "Asia/Kolkata" and not c.flagged
    assert body["manage_url"].startswith(f"{BASE_URL}/consult/manage/")
    _url, page = follow_link(client, body["manage_url"].removeprefix(BASE_URL))
    assert page.status_code == 200 and "Your free consultation" in page.get_data(as_text=True)
    # Whoever is free: no facilitator_id.
    r = client.post(BOOK, json=_body(start + timedelta(hours=2), email="other@example.com"))
    assert r.status_code == 201 and r.get_json()["facilitator_id"] == fac.id


def test_taken_too_soon_or_unavailable_is_409_with_next_slots(client, db):
    _fac(hours="00:00-20:00")
    start = _next()
    bookings.book(start=start, base_url=BASE_URL, now=now_utc(), **guest())
    db.session.commit()
    r = client.post(BOOK, json=_body(start, email="late@example.com"))
    body = r.get_json()
    assert r.status_code == 409 and body["reason"] == "taken" and "taken" in body["error"]
    assert body["next_slots"] and all(datetime.fromisoformat(s["start"]) > start for s in body["next_slots"])
    soon = now_utc().replace(second=0, microsecond=0) + timedelta(minutes=20)
    r = client.post(BOOK, json=_body(soon))
    assert r.status_code == 409 and r.get_json()["reason"] == "too_soon"
    night = datetime.combine(date.today() + timedelta(days=3), datetime.min.time()).replace(
        hour=21, tzinfo=start.tzinfo)
    r = client.post(BOOK, json=_body(night))
    assert r.status_code == 409 and r.get_json()["reason"] == "unavailable"
    assert _count() == 1


INVALID_BOOKINGS = [
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"email": "not-an-email"}, "email"),
    ({"timezone": "Nowhere/Special"}, "timezone"),
    ({"phone": "x" * 41}, "phone"),
    ({"answers": {"unknown_question": "yes"}}, "answers"),
    ({"answers": {"psychosis": "sometimes"}}, "answers"),
    ({"answers": "yes"}, "answers"),
    ({"start": "2026-13-40T10:00:00Z"}, "start"),
    ({"start": "2030-01-01T10:00:00"}, "start"),  # no offset
    ({"start": "2020-01-01T10:00:00+00:00"}, "start"),  # in the past
    ({"facilitator_id": 987654}, "facilitator_id"),
    ({"facilitator_id": "one"}, "facilitator_id"),
    ({"surprise": 1}, "surprise"),
]


def test_invalid_bookings_are_422_with_field_errors_and_book_nothing(client, db):
    _fac()
    start = _next()
    for changes, field in INVALID_BOOKINGS:
        body = _body(start)
        body.update(changes)
        r = client.post(BOOK, json=body)
        assert r.status_code == 422, (changes, r.get_json())
        assert field in r.get_json()["errors"], changes
    assert _count() == 0


def test_missing_fields_and_non_json_bodies(client, db):
    r = client.post(BOOK, json={})
    assert r.status_code == 422 and {"start", "name", "email", "timezone"} <= set(r.get_json()["errors"])
    r = client.post(BOOK, data="start=now", content_type="application/x-www-form-urlencoded")
    assert r.status_code in (415, 422) and "error" in r.get_json()
    r = client.post(BOOK, data="{not json", content_type="application/json")
    assert r.status_code in (400, 422) and "error" in r.get_json()
    assert _count() == 0


def test_api_needs_no_csrf_token_even_when_csrf_is_on(app, client, db, monkeypatch):
    _fac()
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    r = client.post(BOOK, json=_body(_next()))
    assert r.status_code == 201
    # ...while the HTML booking form still requires one.
    r = client.post("/consult/details", data={"start": _next(30).isoformat(), "name": "x", "email": "x@example.com",
                                              "timezone": "UTC"})
    assert r.status_code == 400


def test_openapi_documents_both_routes_as_anonymous(client, db):
    spec = client.get("/api/v1/openapi.json").get_json()
    slots = spec["paths"]["/api/v1/consultations/slots"]["get"]
    create = spec["paths"]["/api/v1/consultations"]["post"]
    assert slots["security"] == [] and create["security"] == []
    assert {"200", "422", "429"} <= set(slots["responses"])
    assert {"201", "409", "422", "429"} <= set(create["responses"])
    assert {p["name"] for p in slots["parameters"]} >= {"start", "end", "tz"}


@pytest.fixture()
def rate_limited_app(app, db):
    """A second app with rate limiting on (the test app runs without); the shared limiter is put back after."""
    before = limiter.enabled
    limited = create_app(base_config(RATELIMIT_ENABLED=True, CONSULT_API_BOOK_RATE_LIMIT="3 per minute",
                                     CONSULT_API_SLOTS_RATE_LIMIT="5 per minute"))
    limiter.reset()
    yield limited
    limiter.reset()
    limiter.enabled = before


def test_rate_limited_per_client_address(rate_limited_app, db):
    _fac()
    client = rate_limited_app.test_client()
    query = {"start": "2026-03-01", "end": "2026-03-02", "tz": "UTC"}
    codes = [client.get(SLOTS, query_string=query).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = client.get(SLOTS, query_string=query)
    assert r.status_code == 429 and r.get_json()["error"] and "Retry-After" in r.headers
    # Another address has its own allowance.
    other = client.get(SLOTS, query_string=query, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    codes = [client.post(BOOK, json={}).status_code for _ in range(4)]
    assert codes == [422, 422, 422, 429]
