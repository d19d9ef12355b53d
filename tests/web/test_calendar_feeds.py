"""Calendar subscription feeds: a private, revocable iCalendar link per person.

Read back with the icalendar library, as a calendar app would: stable UIDs (the invites' own),
UTC times, cancelled events kept as STATUS:CANCELLED, nobody else's names in a participant's feed,
revocation at once, 304 on an unchanged feed.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from retreat.accounts import calendar_feeds
from retreat.cohorts import catalog
from retreat.cohorts.models import CohortSession
from retreat.consults.models import Consultation
from retreat.extensions import db as _db
from retreat.integration import calendar_feed
from retreat.integration.calendar_feed import CalendarTombstone
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


def _events(body: bytes) -> dict[str, dict]:
    cal = Calendar.from_ical(body)
    return {str(ev["UID"]): {"summary": str(ev["SUMMARY"]), "status": str(ev["STATUS"]),
                             "sequence": int(ev.get("SEQUENCE", 0)), "start": ev.decoded("DTSTART"),
                             "description": str(ev.get("DESCRIPTION", "")), "location": str(ev.get("LOCATION", ""))}
            for ev in cal.walk("VEVENT")}


def _session(c, fac, title, days, kind="orientation", location="Lodge, Crestone CO"):
    s = CohortSession(cohort_id=c.id, kind=kind, title=title, starts_at=now_utc() + timedelta(days=days),
                      ends_at=now_utc() + timedelta(days=days, hours=2), location=location, video_url="",
                      facilitator_id=fac.id if fac else None)
    _db.session.add(s)
    _db.session.flush()
    return s


def _consult(fac, *, participant=None, days=3, status="booked", guest="Gale Guest"):
    start = now_utc() + timedelta(days=days)
    c = Consultation(calendar_uid=f"consult-{secrets.token_hex(6)}@retreat", facilitator_id=fac.id,
                     participant_id=participant.id if participant else None, start_at=start,
                     end_at=start + timedelta(minutes=30), blocked_start=start,
                     blocked_end=start + timedelta(minutes=30), status=status, guest_name=guest,
                     guest_email="gale@example.com")
    _db.session.add(c)
    _db.session.flush()
    return c


@pytest.fixture()
def world(db):
    fran = factories.user("facilitator", name="Fran Facilitator", password=None)
    other_fac = factories.user("facilitator", name="Oli Other", password=None)
    c = fc.cohort(starts_at=now_utc() + timedelta(days=20), title="May cohort")
    jo = fc.applicant(c, name="Jo Participant").participant
    kim_enr = fc.applicant(c, name="Kim Peer")
    jo_enr = [e for e in c.enrollments if e.participant_id == jo.id][0]
    for e in (jo_enr, kim_enr):
        e.seat, e.status = "confirmed", "deposit_paid"
    opening = _session(c, fran, "Opening circle", 20)
    circle = _session(c, fran, "Integration circle 1", 30, kind="integration_circle", location="")
    circle.video_url = "https://video.example/circle"
    other = fc.cohort(starts_at=now_utc() + timedelta(days=40), title="Other cohort")
    elsewhere = _session(other, other_fac, "Someone else's session", 40)
    _db.session.flush()
    return {"fran": fran, "other_fac": other_fac, "jo": jo, "kim": kim_enr.participant, "cohort": c,
            "jo_enr": jo_enr, "opening": opening, "circle": circle, "elsewhere": elsewhere}


def _feed_of(app, user):
    feed = calendar_feeds.issue(user, now=now_utc())
    _db.session.flush()
    return f"/calendar/{feed.token}.ics", feed


def test_participant_feed_holds_their_sessions_circles_and_consults_and_no_other_names(app, world):
    jo = world["jo"]
    consult = _consult(world["fran"], participant=jo)
    url, _ = _feed_of(app, jo)
    r = app.test_client().get(url)
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    events = _events(r.data)
    assert set(events) == {f"session-{world['opening'].id}@retreat", f"circle-{world['circle'].id}@retreat",
                           consult.calendar_uid}
    assert events[f"circle-{world['circle'].id}@retreat"]["summary"].startswith("Integration circle 1")
    assert "https://video.example/circle" in events[f"circle-{world['circle'].id}@retreat"]["description"]
    assert events[f"session-{world['opening'].id}@retreat"]["start"].utcoffset() == timedelta(0)
    assert all(ev["status"] == "CONFIRMED" for ev in events.values())
    text = r.data.decode()
    for name in ("Fran", "Kim Peer", "Gale Guest", "Jo Participant", world["fran"].email, world["kim"].email):
        assert name not in text
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H" in r.data and b"X-PUBLISHED-TTL:PT1H" in r.data
    assert "Set-Cookie" not in r.headers


def test_facilitator_feed_holds_hosted_consults_and_their_cohorts_sessions_not_others(app, world):
    booked = _consult(world["fran"], guest="Gale Guest")
    cancelled = _consult(world["fran"], days=4, status="cancelled", guest="Cas Cancelled")
    elsewhere = _consult(world["other_fac"], guest="Not Mine")
    url, _ = _feed_of(app, world["fran"])
    events = _events(app.test_client().get(url).data)
    assert events[booked.calendar_uid]["summary"] == "Free consultation: Gale Guest"
    assert events[cancelled.calendar_uid]["status"] == "CANCELLED"
    assert elsewhere.calendar_uid not in events
    assert f"session-{world['opening'].id}@retreat" in events
    assert f"session-{world['elsewhere'].id}@retreat" not in events
    assert all("Jo Participant" not in ev["description"] for ev in events.values())


def test_moved_session_keeps_its_uid_and_a_deleted_one_is_published_cancelled(app, world):
    url, _ = _feed_of(app, world["jo"])
    opening = world["opening"]
    uid = f"session-{opening.id}@retreat"
    opening.starts_at += timedelta(hours=3)
    opening.ends_at += timedelta(hours=3)
    opening.calendar_sequence += 1
    _db.session.flush()
    moved = _events(app.test_client().get(url).data)[uid]
    assert moved["status"] == "CONFIRMED" and moved["sequence"] == 1 and moved["start"] == opening.starts_at.replace(microsecond=0)
    catalog.delete_session(opening, actor=world["fran"], now=now_utc())
    _db.session.flush()
    assert _db.session.scalar(select(func.count()).select_from(CalendarTombstone)) == 1
    gone = _events(app.test_client().get(url).data)[uid]
    assert gone["status"] == "CANCELLED" and gone["sequence"] == 2
    # the facilitator's feed keeps it cancelled too
    fran_url, _ = _feed_of(app, world["fran"])
    assert _events(app.test_client().get(fran_url).data)[uid]["status"] == "CANCELLED"


def test_leaving_the_cohort_cancels_its_sessions_in_the_feed(app, world):
    url, _ = _feed_of(app, world["jo"])
    world["jo_enr"].status = "withdrawn"
    world["jo_enr"].seat = "none"
    _db.session.flush()
    events = _events(app.test_client().get(url).data)
    assert {ev["status"] for uid, ev in events.items() if uid.startswith(("session-", "circle-"))} == {"CANCELLED"}


def test_unchanged_feed_answers_304_and_a_changed_one_200(app, world):
    url, _ = _feed_of(app, world["jo"])
    client = app.test_client()
    first = client.get(url)
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    world["opening"].title = "Opening circle (new room)"
    _db.session.flush()
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 200


def test_reset_and_turn_off_revoke_the_old_link_at_once(app, world):
    jo = world["jo"]
    c = signed_in(app, jo)
    assert "You have no subscription link yet" in c.get("/account/calendar").get_data(as_text=True)
    r = c.post("/account/calendar/reset", data={})
    assert r.status_code == 303
    page = c.get("/account/calendar")
    assert page.headers["Cache-Control"].startswith("no-store")
    first = calendar_feeds.active_feed(jo)
    assert f"/calendar/{first.token}.ics" in page.get_data(as_text=True)
    assert app.test_client().get(f"/calendar/{first.token}.ics").status_code == 200
    c.post("/account/calendar/reset", data={})
    second = calendar_feeds.active_feed(jo)
    assert second.id != first.id
    assert app.test_client().get(f"/calendar/{first.token}.ics").status_code == 404
    assert app.test_client().get(f"/calendar/{second.token}.ics").status_code == 200
    c.post("/account/calendar/off", data={})
    assert calendar_feeds.active_feed(jo) is None
    assert app.test_client().get(f"/calendar/{second.token}.ics").status_code == 404
    actions = list(_db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("calendar_feed.%"))
                                       .order_by(AuditEvent.id)))
    assert actions == ["calendar_feed.created", "calendar_feed.reset", "calendar_feed.revoked"]
    assert "no subscription link to turn off" in c.post("/account/calendar/off", data={},
                                                         follow_redirects=True).get_data(as_text=True)


def test_unknown_malformed_and_closed_account_links_get_404(app, world):
    client = app.test_client()
    for token in ("cal_nope", "x" * 300, "rt_notacalendar", "cal_" + "a" * 43):
        assert client.get(f"/calendar/{token}.ics").status_code == 404
    url, _ = _feed_of(app, world["jo"])
    world["jo"].is_active_account = False
    _db.session.flush()
    assert client.get(url).status_code == 404


def test_token_is_stored_hashed_and_encrypted_never_in_clear(app, world):
    _, feed = _feed_of(app, world["jo"])
    raw = feed.token
    row = _db.session.execute(select(calendar_feeds.CalendarFeed.__table__)).one()._mapping
    assert raw not in str(dict(row))
    assert row["token_hash"] != raw and len(row["token_hash"]) == 64


@pytest.mark.parametrize("role", ["finance", "provider"])
def test_roles_without_a_calendar_get_403(app, db, role):
    c = signed_in(app, factories.user(role, password=None))
    assert c.get("/account/calendar").status_code == 403
    assert c.post("/account/calendar/reset", data={}).status_code == 403


def test_feed_statement_count_is_bounded(app, world):
    for i in range(5):
        _session(world["cohort"], world["fran"], f"Extra {i}", 21 + i)
        _consult(world["fran"], participant=world["jo"], days=5 + i)
    url, _ = _feed_of(app, world["jo"])
    client = app.test_client()
    client.get(url)  # the first fetch records last_fetched_at
    with counting() as statements:
        assert client.get(url).status_code == 200
    assert len(statements) <= 8, statements
    assert len(calendar_feed.events_for(world["jo"], now_utc())) == 2 + 5 + 5
