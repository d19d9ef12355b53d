"""The embeddable booking widget (issue #19 item 3): /widget/* may be framed by the origins in
WIDGET_ALLOWED_ORIGINS only, every other page by nobody; the public booking API answers CORS for
those origins only and refuses a browser POST from any other; booking through it is the public
booking rule (409 when taken, 422 field errors, nothing booked)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat import create_app
from retreat.config import ConfigurationError, widget_origins
from retreat.consults import booking as bookings
from retreat.consults import slots as free_times
from retreat.models import Consultation
from retreat.timeutil import now_utc
from tests.conftest import base_config
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator, guest
from tests.web.test_finance_query_counts import counting

SITE = "https://www.example-practice.com"
OTHER = "https://evil.example.net"
SLOTS = "/api/v1/consultations/slots"
BOOK = "/api/v1/consultations"


@pytest.fixture()
def listed(app, monkeypatch):
    """The app as started with WIDGET_ALLOWED_ORIGINS=SITE (the value create_app parsed)."""
    monkeypatch.setitem(app.extensions, "retreat_widget_origins", widget_origins({"WIDGET_ALLOWED_ORIGINS": SITE}))


def _count(db):
    return db.session.scalar(select(func.count(Consultation.id)))


def _next_start():
    now = now_utc()
    return free_times.next_free_slots(now + timedelta(hours=26), now, limit=1)[0].start


def _body(when, **kw):
    body = {"start": when.isoformat(), "name": "Wanda Widget", "email": "wanda@example.com", "timezone": "Europe/Berlin"}
    body.update(kw)
    return body


# -- the one setting -----------------------------------------------------------------------------

def test_origins_are_normalised():
    raw = " https://WWW.Example-Practice.com/ , http://127.0.0.1:8000,https://x.org:443,https://www.example-practice.com"
    assert widget_origins({"WIDGET_ALLOWED_ORIGINS": raw}) == (SITE, "http://127.0.0.1:8000", "https://x.org")
    assert widget_origins({"WIDGET_ALLOWED_ORIGINS": ""}) == ()


@pytest.mark.parametrize("value, reason", [
    ("*", "wildcard"),
    ("https://*.example.com", "wildcard"),
    ("https://www.example.com/booking", "no path"),
    ("www.example.com", "scheme://host"),
    ("ftp://example.com", "http or https"),
    ("https://example.com:99999", "scheme://host"),
    ("https://example.com?x=1", "no path, query"),
])
def test_an_invalid_origin_refuses_to_start(value, reason):
    with pytest.raises(ConfigurationError, match=reason) as err:
        create_app(base_config(WIDGET_ALLOWED_ORIGINS=f"{SITE},{value}"))
    assert "WIDGET_ALLOWED_ORIGINS" in str(err.value) and repr(value) in str(err.value)


def test_the_started_app_reads_the_setting():
    app = create_app(base_config(WIDGET_ALLOWED_ORIGINS=f"{SITE}, http://127.0.0.1:8000"))
    r = app.test_client().get("/widget/consult")
    assert r.headers["Content-Security-Policy"].endswith(f"frame-ancestors {SITE} http://127.0.0.1:8000")


# -- framing -------------------------------------------------------------------------------------

def test_only_widget_pages_may_be_framed_by_the_listed_origins(client, db, listed):
    around_the_clock_facilitator()
    db.session.commit()
    r = client.get("/widget/consult", query_string={"origin": SITE})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert "X-Frame-Options" not in r.headers
    assert f"frame-ancestors {SITE}" in r.headers["Content-Security-Policy"]
    page = r.get_data(as_text=True)
    assert f'data-host-origin="{SITE}"' in page and "Book a free consultation" in page
    # A host that is not listed gets no height messages.
    assert 'data-host-origin=""' in client.get("/widget/consult", query_string={"origin": OTHER}).get_data(as_text=True)
    for path in ("/", "/consult/", "/account/login", "/api/v1/docs", "/widget.js"):
        other = client.get(path)
        assert other.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"], path


def test_without_origins_nobody_frames_the_widget(client, db):
    r = client.get("/widget/consult")
    assert r.status_code == 200 and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_the_embed_script(client, db):
    r = client.get("/widget.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert "data-retreat-widget" in r.get_data(as_text=True) and "event.origin !== appOrigin" in r.get_data(as_text=True)
    assert r.headers["Cache-Control"].startswith("public")


# -- CORS ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, method", [(SLOTS, "GET"), (BOOK, "POST")])
def test_preflight_for_a_listed_origin(client, db, listed, path, method):
    r = client.options(path, headers={"Origin": SITE, "Access-Control-Request-Method": method,
                                      "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == SITE
    assert method in r.headers["Access-Control-Allow-Methods"] and "Content-Type" in r.headers["Access-Control-Allow-Headers"]
    assert "Origin" in r.headers["Vary"] and "Access-Control-Allow-Credentials" not in r.headers
    refused = client.options(path, headers={"Origin": OTHER, "Access-Control-Request-Method": method})
    assert "Access-Control-Allow-Origin" not in refused.headers and "Origin" in refused.headers["Vary"]


def test_slots_answer_cors_for_listed_origins_only(client, db, listed):
    around_the_clock_facilitator()
    db.session.commit()
    day = now_utc().date() + timedelta(days=2)
    q = {"start": day.isoformat(), "end": day.isoformat(), "tz": "Europe/Berlin"}
    r = client.get(SLOTS, query_string=q, headers={"Origin": SITE})
    assert r.status_code == 200 and r.get_json()["slots"] and r.headers["Access-Control-Allow-Origin"] == SITE
    r = client.get(SLOTS, query_string=q, headers={"Origin": OTHER})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers and "Origin" in r.headers["Vary"]
    bad = client.get(SLOTS, query_string={**q, "tz": "Mars/Olympus_Mons"}, headers={"Origin": SITE})
    assert bad.status_code == 422 and "tz" in bad.get_json()["errors"]
    assert bad.headers["Access-Control-Allow-Origin"] == SITE  # the widget can read the message


def test_the_staff_api_answers_no_cors(client, db, listed):
    r = client.get(BOOK, headers={"Origin": SITE})  # the staff list (token): 401 here
    assert r.status_code == 401 and "Access-Control-Allow-Origin" not in r.headers
    pre = client.options(BOOK, headers={"Origin": SITE, "Access-Control-Request-Method": "GET"})
    assert "GET" not in pre.headers.get("Access-Control-Allow-Methods", "")


# -- booking through the widget API --------------------------------------------------------------

def test_booking_from_a_listed_origin(client, db, listed):
    fac = around_the_clock_facilitator()
    db.session.commit()
    start = _next_start()
    r = client.post(BOOK, json=_body(start, facilitator_id=fac.id), headers={"Origin": SITE})
    assert r.status_code == 201 and r.headers["Access-Control-Allow-Origin"] == SITE
    c = db.session.get(Consultation, r.get_json()["id"])
    assert c.guest_email == "wanda@example.com" and c.guest_tz == "Europe/Berlin" and c.booked_via == "api"
    # The widget page itself (same origin as the app) books too, without CORS.
    r = client.post(BOOK, json=_body(start + timedelta(hours=2), email="self@example.com"),
                    headers={"Origin": "http://localhost"})
    assert r.status_code == 201 and "Access-Control-Allow-Origin" not in r.headers


def test_a_foreign_origin_cannot_book(client, db, listed):
    around_the_clock_facilitator()
    db.session.commit()
    for origin in (OTHER, "null", "https://www.example-practice.com.evil.net"):
        r = client.post(BOOK, json=_body(_next_start()), headers={"Origin": origin})
        body = r.get_json()
        assert r.status_code == 403 and "origin" in body["errors"] and "not among" in body["error"]
        assert "Access-Control-Allow-Origin" not in r.headers
    assert _count(db) == 0


def test_a_taken_time_is_409_with_a_message_and_books_nothing(client, db, listed):
    around_the_clock_facilitator(hours="00:00-20:00")
    start = _next_start()
    bookings.book(start=start, base_url=BASE_URL, now=now_utc(), **guest())
    db.session.commit()
    r = client.post(BOOK, json=_body(start), headers={"Origin": SITE})
    assert r.status_code == 409 and "taken" in r.get_json()["error"] and r.headers["Access-Control-Allow-Origin"] == SITE
    assert _count(db) == 1


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"), ({"email": "not-an-email"}, "email"), ({"timezone": "Nowhere/Special"}, "timezone"),
    ({"start": "tomorrow"}, "start"),
])
def test_bad_input_is_422_with_field_errors_and_books_nothing(client, db, listed, change, field):
    around_the_clock_facilitator()
    db.session.commit()
    r = client.post(BOOK, json=_body(_next_start(), **change), headers={"Origin": SITE})
    body = r.get_json()
    assert r.status_code == 422 and field in body["errors"] and body["error"]
    assert r.headers["Access-Control-Allow-Origin"] == SITE
    assert _count(db) == 0


# -- statements ----------------------------------------------------------------------------------

def test_widget_page_and_slots_statement_counts(client, db, listed):
    around_the_clock_facilitator()
    db.session.commit()
    client.get("/widget/consult")  # first request of the session
    with counting() as page:
        assert client.get("/widget/consult").status_code == 200
    day = now_utc().date() + timedelta(days=1)
    q = {"start": day.isoformat(), "end": (day + timedelta(days=6)).isoformat(), "tz": "Europe/Berlin"}
    with counting() as slots:
        assert client.get(SLOTS, query_string=q, headers={"Origin": SITE}).status_code == 200
    assert len(page) <= 2, page  # the bookable facilitators with their settings
    assert len(slots) <= 3, slots  # cache version + the week's rules, overrides and busy times
