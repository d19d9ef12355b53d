"""In-person sessions read in the venue's time, with the viewer's own beside it (issue #20 item 3).

A Colorado cohort (America/Denver) with an in-person dosing session and in-person circles at
09:00 MST, seen by a participant, a facilitator and a provider who live in Europe/Berlin: every page
that shows the session's time gives "09:00 MST venue time" and "17:00 CET your time". An online
circle gives the viewer's time only. The circle emails give both, in words (no ISO).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retreat.cohorts import catalog as cohorts
from retreat.cohorts import enrollment
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.integration.circle_changes import ADDED, MOVED, CircleChange
from retreat.messaging.render import render_email
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc, venue_time
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.unit.test_dosing_staffing import _clinician

BERLIN = "Europe/Berlin"


def _january_11(hour_utc: int) -> datetime:
    """11 January of next year (winter: Denver is UTC-7 = MST, Berlin UTC+1 = CET)."""
    return datetime(now_utc().year + 1, 1, 11, hour_utc, 0, tzinfo=UTC)


@pytest.fixture()
def s(db):
    class S:
        pass

    s = S()
    now = now_utc()
    s.org = factories.provider_org()
    start = _january_11(16)  # 09:00 MST, 17:00 CET
    s.cohort = fc.cohort(fc.retreat(region="CO"), starts_at=start - timedelta(days=2), ends_at=start + timedelta(days=3),
                         timezone="America/Denver", provider_organization_id=s.org.id)
    s.facilitator = factories.user("facilitator", password=None, tz=BERLIN)
    fc.new_request()
    s.dosing = cohorts.add_session(s.cohort, kind=SessionKind.DOSING.value, title="Dosing day", starts_at=start,
                                   ends_at=start + timedelta(hours=4), location="The Lodge, Boulder", video_url="",
                                   facilitator_id=None, actor=s.facilitator, now=now)
    fc.new_request()
    s.enr = fc.cleared(s.cohort, now=now, tz=BERLIN)
    enrollment.confirm_seat(s.enr, now=now, actor=None)
    s.provider = _clinician(s.org)
    s.provider.tz = BERLIN
    fc.new_request()
    return s


def _both(html: str, start: datetime) -> None:
    assert "09:00 MST" in html and "venue time" in html, html[:2000]
    assert "17:00 CET" in html and "your time" in html


def _plan(s, **form):
    plan = ip.ensure_plan(s.cohort, now_utc())
    data = {"version": str(plan.version), "circle_weeks": "2", "circle_weekday": str(plan.circle_weekday),
            "circle_local_time": "09:00", "circle_duration_minutes": "90", "circle_location": "",
            "circle_video_url": "", "circle_facilitator_id": "", **{k: "on" for k in ip.TOUCHPOINT_KINDS}}
    data.update(form)
    ic.update_plan(plan, data, expected_version=plan.version, actor=s.facilitator, now=now_utc())
    fc.new_request()
    return ic.plan_circles(s.cohort)


def test_in_person_circle_shows_venue_time_and_the_participants_own(app, db, s):
    circles = _plan(s, circle_location="Studio, 12 Pine St")
    assert circles and all(c.in_person and c.venue_tz == "America/Denver" for c in circles)
    me = signed_in(app, s.enr.participant)
    html = me.get("/me/circles").get_data(as_text=True)
    assert "09:00 MST" in html and "venue time" in html  # circles at 09:00 Denver, winter
    assert "17:00 CET" in html and "your time" in html


def test_online_circle_shows_the_viewers_time_only(app, db, s):
    circles = _plan(s, circle_video_url="https://meet.example/circle")
    assert circles and not any(c.in_person for c in circles)
    me = signed_in(app, s.enr.participant)
    html = me.get("/me/circles").get_data(as_text=True)
    assert "17:00 CET" in html and "09:00 MST" not in html
    assert "data-venue-datetime" not in html and "</time> your time" not in html


def test_facilitator_pages_show_venue_and_own_time_for_the_dosing_session_and_circles(app, db, s):
    circles = _plan(s, circle_location="Studio, 12 Pine St")
    fac = signed_in(app, s.facilitator)
    for url in (f"/facilitator/cohorts/{s.cohort.id}", f"/facilitator/cohorts/{s.cohort.id}/roster",
                f"/facilitator/sessions/{s.dosing.id}/checkin", f"/facilitator/cohorts/{s.cohort.id}/integration",
                f"/facilitator/circles/{circles[0].id}"):
        r = fac.get(url)
        assert r.status_code == 200, url
        _both(r.get_data(as_text=True), s.dosing.starts_at)


def test_provider_dosing_list_and_home_show_venue_and_own_time(app, db, s):
    prov = signed_in(app, s.provider)
    for url in ("/provider/dosing", "/provider/"):
        r = prov.get(url)
        assert r.status_code == 200, url
        _both(r.get_data(as_text=True), s.dosing.starts_at)


def test_a_viewer_in_the_venues_zone_sees_one_time(app, db, s):
    local = factories.user("facilitator", password=None, tz="America/Denver")
    html = signed_in(app, local).get(f"/facilitator/cohorts/{s.cohort.id}").get_data(as_text=True)
    assert "09:00 MST" in html and "data-venue-datetime" in html and "</time> your time" not in html


def _latest_invite_text(db, s, **plan) -> str:
    """The circle invite the participant gets after the plan is saved with ``plan``, as rendered."""
    _plan(s, **plan)
    ic.schedule_circle_messages(s.enr, now_utc())
    fc.new_request()
    invite = (db.session.query(OutboxMessage).filter_by(template="circle_invite", recipient_email=s.enr.participant.email)
              .order_by(OutboxMessage.id.desc()).first())
    assert invite is not None
    return render_email(invite.template, invite.context, recipient_tz=BERLIN).text


def test_circle_emails_give_venue_and_recipient_time_in_words(app, db, s):
    text = _latest_invite_text(db, s, circle_location="Studio, 12 Pine St")
    assert "09:00 MST venue time (America/Denver)" in text
    assert "17:00 CET your time (Europe/Berlin)" in text
    assert "T09:00" not in text and "T16:00" not in text  # no ISO stamps
    assert "Studio, 12 Pine St" in text


def test_online_circle_email_gives_the_recipients_time_only(app, db, s):
    text = _latest_invite_text(db, s, circle_video_url="https://meet.example/circle")
    assert "17:00 (Europe/Berlin)" in text and "venue time" not in text


def test_change_lines_and_the_format_rule():
    start = _january_11(16)
    assert venue_time(start, "America/Denver", BERLIN).endswith("09:00 MST venue time (America/Denver) — "
                                                                "17:00 CET your time (Europe/Berlin)")
    assert venue_time(start, "America/Denver", "America/Denver").endswith("09:00 MST venue time (America/Denver)")
    assert venue_time(start, None, BERLIN).endswith("17:00 (Europe/Berlin)")  # online: the reader's time
    late = _january_11(23)  # 16:00 in Denver is 00:00 the next day in Berlin: the day is named
    venue_part, mine_part = venue_time(late, "America/Denver", BERLIN).split(" — ")
    assert "11 January" in venue_part and "16:00 MST" in venue_part
    assert "12 January" in mine_part and "00:00 CET your time" in mine_part
    moved = CircleChange(1, frozenset({MOVED}), start, start - timedelta(days=1), "Studio", 5, 1, "America/Denver")
    assert moved.line(BERLIN).count("venue time") == 2 and moved.line(BERLIN).count("your time") == 2
    online = CircleChange(2, frozenset({ADDED}), start, None, "https://meet.example/c", 6, 0)
    assert "venue time" not in online.line(BERLIN) and "17:00 (Europe/Berlin)" in online.line(BERLIN)


def test_in_person_means_a_place_and_no_video_link():
    assert CohortSession(location="Lodge", video_url="").in_person
    assert not CohortSession(location="Lodge", video_url="https://meet.example/x").in_person
    assert not CohortSession(location="", video_url="https://meet.example/x").in_person
