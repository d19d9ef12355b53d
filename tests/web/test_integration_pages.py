"""Integration plan and circles in the browser's terms: participants see their circles, download
the invite and RSVP (only for themselves); facilitators edit the plan (stale or bad input refused,
nothing changed), see RSVPs and take attendance."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import enrollment
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.models import CircleRsvp
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in


@pytest.fixture()
def s(db):
    class S:
        pass

    s = S()
    start = now_utc().replace(microsecond=0) + timedelta(days=20)
    s.cohort = fc.cohort(starts_at=start, ends_at=start + timedelta(days=5), timezone="America/Denver")
    s.enr = fc.cleared(s.cohort, now=now_utc())
    enrollment.confirm_seat(s.enr, now=now_utc(), actor=None)
    s.other = fc.cleared(s.cohort, now=now_utc())
    enrollment.confirm_seat(s.other, now=now_utc(), actor=None)
    s.facilitator = factories.user("facilitator", password=None)
    db.session.commit()
    return s


def _plan_form(plan, **changes):
    data = {"version": str(plan.version), "circle_weeks": str(plan.circle_weeks),
            "circle_weekday": str(plan.circle_weekday), "circle_local_time": plan.circle_local_time.strftime("%H:%M"),
            "circle_duration_minutes": str(plan.circle_duration_minutes), "circle_location": "Studio, 12 Pine St",
            "circle_video_url": "https://meet.example/circle", "circle_facilitator_id": "",
            **{k: "on" for k in ip.TOUCHPOINT_KINDS}}
    data.update(changes)
    return data


def test_facilitator_page_creates_the_plan_for_an_existing_cohort_and_saves_edits(app, db, s):
    assert ip.plan_for(s.cohort) is None
    fac = signed_in(app, s.facilitator)
    page = fac.get(f"/facilitator/cohorts/{s.cohort.id}/integration")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Integration circle 1" in html and "Check-in 72 hours after each person&#39;s discharge from the last dosing session" in html
    plan = ip.plan_for(s.cohort)
    first = ic.plan_circles(s.cohort)[0].starts_at
    r = fac.post(f"/facilitator/cohorts/{s.cohort.id}/integration", data=_plan_form(plan, circle_weekday="3"))
    assert r.status_code == 302
    db.session.expire_all()
    assert plan.version == 2 and plan.circle_weekday == 3 and plan.updated_by_id == s.facilitator.id
    circles = ic.plan_circles(s.cohort)
    assert circles[0].starts_at != first and circles[0].video_url == "https://meet.example/circle"
    assert circles[0].starts_at.astimezone(ip.zone("America/Denver")).weekday() == 3
    assert "Plan saved: 6 circles moved, 6 places changed." in fac.get(r.headers["Location"]).get_data(as_text=True)


def test_stale_plan_edit_gets_409_and_changes_nothing(app, db, s):
    plan = ip.ensure_plan(s.cohort, now_utc())
    ic.sync_circles(s.cohort, now_utc())
    db.session.commit()
    fac = signed_in(app, s.facilitator)
    stale = _plan_form(plan)  # both tabs loaded version 1
    assert fac.post(f"/facilitator/cohorts/{s.cohort.id}/integration", data=_plan_form(plan, circle_weeks="3")
                    ).status_code == 302
    r = fac.post(f"/facilitator/cohorts/{s.cohort.id}/integration", data={**stale, "circle_weeks": "8"})
    assert r.status_code == 409
    assert "Someone else changed this plan" in r.get_data(as_text=True)
    db.session.expire_all()
    assert plan.circle_weeks == 3 and plan.version == 2
    assert len(ic.plan_circles(s.cohort)) == 3


@pytest.mark.parametrize("field, value, message", [
    ("circle_weekday", "7", "Choose a weekday"),
    ("circle_weeks", "0", "1 to 52"),
    ("circle_weeks", "53", "1 to 52"),
    ("circle_local_time", "7 pm", "HH:MM"),
])
def test_bad_plan_input_is_a_form_error_and_changes_nothing(app, db, s, field, value, message):
    plan = ip.ensure_plan(s.cohort, now_utc())
    ic.sync_circles(s.cohort, now_utc())
    db.session.commit()
    before = [(c.id, c.starts_at) for c in ic.plan_circles(s.cohort)]
    fac = signed_in(app, s.facilitator)
    r = fac.post(f"/facilitator/cohorts/{s.cohort.id}/integration", data=_plan_form(plan, **{field: value}))
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert message in html and f'id="{field}-error"' in html
    db.session.expire_all()
    assert plan.version == 1 and [(c.id, c.starts_at) for c in ic.plan_circles(s.cohort)] == before


def test_participant_sees_circles_downloads_the_invite_and_rsvps(app, db, s):
    ic.update_plan(ip.ensure_plan(s.cohort, now_utc()), _plan_form(ip.ensure_plan(s.cohort, now_utc())),
                   expected_version=1, actor=s.facilitator, now=now_utc())
    db.session.commit()
    circle = ic.plan_circles(s.cohort)[0]
    me = signed_in(app, s.enr.participant)
    html = me.get("/me/circles").get_data(as_text=True)
    assert "Integration circle 1" in html and "https://meet.example/circle" in html and "12 Pine St" in html
    ics = me.get(f"/me/circles/{circle.id}.ics")
    assert ics.status_code == 200 and ics.mimetype == "text/calendar"
    body = ics.get_data(as_text=True)
    assert f"UID:circle-{circle.id}@retreat" in body and "DTSTART:" in body and "METHOD:PUBLISH" in body
    r = me.post(f"/me/circles/{circle.id}/rsvp", data={"status": "cant_make_it", "note": "Away that week"})
    assert r.status_code == 302
    row = db.session.scalar(select(CircleRsvp).where(CircleRsvp.enrollment_id == s.enr.id))
    assert (row.status, row.note) == ("cant_make_it", "Away that week")
    assert "I can't make it" in me.get("/me/circles").get_data(as_text=True)
    # Changeable.
    assert me.post(f"/me/circles/{circle.id}/rsvp", data={"status": "going"}).status_code == 302
    db.session.expire_all()
    assert row.status == "going"
    # Bad answer: clear message, nothing changed.
    r = me.post(f"/me/circles/{circle.id}/rsvp", data={"status": "perhaps"})
    assert r.status_code == 422 and "I can't make it" in r.get_data(as_text=True)
    db.session.expire_all()
    assert row.status == "going"
    # The facilitator sees the answers and takes attendance.
    fac = signed_in(app, s.facilitator)
    page = fac.get(f"/facilitator/circles/{circle.id}").get_data(as_text=True)
    assert s.enr.participant.name in page and "Going" in page and s.other.participant.name in page
    r = fac.post(f"/facilitator/circles/{circle.id}/attendance/{s.enr.id}", data={"status": "present"})
    assert r.status_code == 302
    assert "Present" in fac.get(f"/facilitator/circles/{circle.id}").get_data(as_text=True)


def test_nobody_else_can_rsvp_or_download_for_a_circle_they_are_not_in(app, db, s):
    ic.sync_circles(s.cohort, now_utc())
    db.session.commit()
    circle = ic.plan_circles(s.cohort)[0]
    stranger = factories.user("participant", password=None)
    withdrawn = fc.cleared(s.cohort, now=now_utc())
    enrollment.withdraw(withdrawn, now=now_utc(), actor=None)
    db.session.commit()
    for person in (stranger, withdrawn.participant):
        c = signed_in(app, person)
        assert c.post(f"/me/circles/{circle.id}/rsvp", data={"status": "cant_make_it"}).status_code == 404
        assert c.get(f"/me/circles/{circle.id}.ics").status_code == 404
        assert "Integration circle 1" not in c.get("/me/circles").get_data(as_text=True)
    assert db.session.scalar(select(CircleRsvp).where(CircleRsvp.session_id == circle.id)) is None
    # A participant cannot edit the plan or take attendance.
    me = signed_in(app, s.enr.participant)
    assert me.get(f"/facilitator/cohorts/{s.cohort.id}/integration").status_code == 403
    assert me.post(f"/facilitator/circles/{circle.id}/attendance/{s.other.id}", data={"status": "absent"}
                   ).status_code == 403
    # Not a circle: 404 for the facilitator's circle page.
    fac = signed_in(app, s.facilitator)
    assert fac.get("/facilitator/circles/999999").status_code == 404


def test_a_plan_circle_cannot_be_removed_as_a_loose_session(app, db, s):
    ic.sync_circles(s.cohort, now_utc())
    db.session.commit()
    circle = ic.plan_circles(s.cohort)[0]
    fac = signed_in(app, s.facilitator)
    overview = fac.get(f"/facilitator/cohorts/{s.cohort.id}").get_data(as_text=True)
    assert "From the integration plan" in overview
    r = fac.post(f"/facilitator/sessions/{circle.id}/delete", follow_redirects=True)
    assert r.status_code == 200 and "change the plan" in r.get_data(as_text=True)
    db.session.expire_all()
    assert len(ic.plan_circles(s.cohort)) == 6
