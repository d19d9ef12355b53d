from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from retreat.messaging.ics import IcsError, build_calendar, event_spec

START = datetime(2026, 3, 8, 9, 30, tzinfo=ZoneInfo("America/Denver"))  # DST starts that day


def parse(data: bytes):
    cal = Calendar.from_ical(data)
    ev = next(c for c in cal.walk() if c.name == "VEVENT")
    return cal, ev


def test_request_has_utc_times_uid_and_sequence():
    spec = event_spec(uid="consult-1@retreat", start=START, end=START + timedelta(minutes=30),
                      summary="Free consultation", attendee_email="p@example.com", organizer_email="f@example.com")
    cal, ev = parse(build_calendar(spec))
    assert str(cal["method"]) == "REQUEST"
    assert str(ev["uid"]) == "consult-1@retreat" and int(ev["sequence"]) == 0
    assert ev.decoded("dtstart") == datetime(2026, 3, 8, 15, 30, tzinfo=UTC)
    assert b"DTSTART:20260308T153000Z" in build_calendar(spec)


def test_cancel_keeps_uid_and_raises_sequence():
    spec = event_spec(uid="consult-1@retreat", start=START, end=START + timedelta(minutes=30),
                      summary="Free consultation", sequence=2, method="CANCEL")
    cal, ev = parse(build_calendar(spec))
    assert str(cal["method"]) == "CANCEL" and str(ev["status"]) == "CANCELLED" and int(ev["sequence"]) == 2


@pytest.mark.parametrize("bad", [
    {"uid": ""}, {"method": "PUBLISHX"}, {"end": START.isoformat()}, {"start": "2026-03-08T09:30:00"},
])
def test_invalid_events_are_refused(bad):
    spec = event_spec(uid="u", start=START, end=START + timedelta(minutes=30), summary="s")
    spec.update(bad)
    with pytest.raises(IcsError):
        build_calendar(spec)


def test_ics_response_is_a_downloadable_calendar(app):
    from datetime import UTC, datetime, timedelta

    import icalendar

    from retreat.messaging.ics import event_spec, ics_response

    start = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
    spec = event_spec(uid="session-3@retreat", start=start, end=start + timedelta(hours=2), summary="Integration circle")
    with app.test_request_context():
        resp = ics_response(spec, "circle 3/../x.ics")
    assert resp.mimetype == "text/calendar"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="circle3..x.ics"'
    cal = icalendar.Calendar.from_ical(resp.get_data())
    assert str(cal["METHOD"]) == "PUBLISH" and cal.walk("VEVENT")[0].decoded("DTSTART") == start
