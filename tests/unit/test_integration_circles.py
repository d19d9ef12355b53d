"""Integration circles: DST-correct generation, following the dosing session, never deleting a
circle with attendance or RSVPs, invites and reminders once (and again after a move), withdrawal,
RSVPs, plan edits (stale version, bad input), and the plan listeners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import catalog as cohorts
from retreat.cohorts import enrollment
from retreat.cohorts.models import SessionKind
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.messaging import dispatcher
from retreat.messaging.transport import transport_from_config
from retreat.models import CircleRsvp, OutboxMessage
from tests import factories
from tests import factories_cohorts as fc

NOW = datetime(2026, 1, 10, 17, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _cohort(start, end, tz="America/Denver"):
    c = fc.cohort(starts_at=start, ends_at=end, timezone=tz)
    fc.new_request()
    return c


def _dosing(c, start, end, now=NOW):
    fc.new_request()
    facilitator = factories.user("facilitator", password=None)
    s = cohorts.add_session(c, kind=SessionKind.DOSING.value, title="Dosing", starts_at=start, ends_at=end,
                            location="Lodge", video_url="", facilitator_id=None, actor=facilitator, now=now)
    fc.new_request()
    return s


def _member(c, now=NOW, **kw):
    fc.new_request()
    enr = fc.cleared(c, now=now, **kw)
    enrollment.confirm_seat(enr, now=now, actor=None)
    fc.new_request()
    return enr


def _form(plan, **changes):
    data = {"circle_weeks": str(plan.circle_weeks), "circle_weekday": str(plan.circle_weekday),
            "circle_local_time": plan.circle_local_time.strftime("%H:%M"),
            "circle_duration_minutes": str(plan.circle_duration_minutes),
            "circle_location": plan.circle_location, "circle_video_url": plan.circle_video_url or "https://meet.example/c",
            "circle_facilitator_id": "", **{k: "on" for k in ip.TOUCHPOINT_KINDS if getattr(plan, k)}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _messages(enr, *, status=None):
    q = select(OutboxMessage).where(OutboxMessage.dedupe_key.like("circle-%"),
                                    OutboxMessage.group_key == f"enrollment:{enr.id}").order_by(OutboxMessage.due_at)
    if status:
        q = q.where(OutboxMessage.status == status)
    from retreat.extensions import db

    db.session.expire_all()
    return list(db.session.scalars(q))


def test_circles_stay_at_18_local_across_the_march_dst_change(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))  # ends Fri 20 Feb 20:00 MST
    circles = ic.plan_circles(c)
    assert [s.circle_sequence for s in circles] == [1, 2, 3, 4, 5, 6]
    # From the week after the anchor, on Tuesdays (template) at 18:00 Denver time.
    local = [s.starts_at.astimezone(ip.zone("America/Denver")) for s in circles]
    assert [(t.month, t.day, t.hour, t.minute) for t in local] == [
        (2, 24, 18, 0), (3, 3, 18, 0), (3, 10, 18, 0), (3, 17, 18, 0), (3, 24, 18, 0), (3, 31, 18, 0)]
    assert [s.starts_at.hour for s in circles] == [1, 1, 0, 0, 0, 0]  # UTC moves by an hour on 8 March
    assert all(s.ends_at - s.starts_at == timedelta(minutes=90) for s in circles)
    assert all(s.kind == SessionKind.INTEGRATION_CIRCLE.value for s in circles)


def test_circles_stay_at_18_local_across_the_november_dst_change(db):
    c = _cohort(utc(2026, 10, 12, 16), utc(2026, 10, 17, 17))
    _dosing(c, utc(2026, 10, 16, 22), utc(2026, 10, 17, 2), now=NOW)  # Fri 16 Oct 20:00 MDT
    circles = ic.plan_circles(c)
    assert [s.starts_at for s in circles[:3]] == [utc(2026, 10, 21, 0), utc(2026, 10, 28, 0), utc(2026, 11, 4, 1)]
    assert {s.starts_at.astimezone(ip.zone("America/Denver")).hour for s in circles} == {18}


def test_new_cohort_gets_a_plan_and_circles_from_the_template(db):
    retreat = fc.retreat()
    actor = factories.user("facilitator", password=None)
    data = cohorts.CohortInput(title="Autumn", starts_at=utc(2026, 10, 12, 16), ends_at=utc(2026, 10, 17, 17),
                               timezone="America/Denver", capacity=10, currency="USD", price_minor=100000,
                               deposit_minor=10000, balance_due_on=None, refund_policy="", deposit_timing="after_clearance",
                               provider_organization_id=None)
    c = cohorts.save_cohort(None, retreat, data, actor=actor, now=NOW)
    plan = ip.plan_for(c)
    assert plan is not None and plan.circle_weeks == 6
    assert len(ic.plan_circles(c)) == 6
    # The cohort's dates move a week: the circles follow (no dosing session yet: anchored on the end date).
    first = ic.plan_circles(c)[0].starts_at
    data.starts_at, data.ends_at = data.starts_at + timedelta(days=7), data.ends_at + timedelta(days=7)
    fc.new_request()
    cohorts.save_cohort(c, retreat, data, actor=actor, now=NOW)
    assert ic.plan_circles(c)[0].starts_at == first + timedelta(days=7)
    assert ic.plan_circles(c)[0].calendar_sequence == 1


def test_plan_follows_the_dosing_session_and_tells_the_listeners(db):
    c = _cohort(utc(2026, 4, 6, 16), utc(2026, 4, 11, 17))
    calls = []

    def listener(cohort, now):
        calls.append((cohort.id, now))

    ip.PLAN_LISTENERS.append(listener)
    try:
        first = _dosing(c, utc(2026, 4, 7, 16), utc(2026, 4, 7, 20))  # Tue 7 April
        assert calls == [(c.id, NOW)]
        t1 = {t.kind: t.due_at_utc for t in ip.touchpoints(c)}
        circle1 = ic.plan_circles(c)[0]
        assert circle1.starts_at == utc(2026, 4, 15, 0)  # Tue 14 April 18:00 MDT
        # The dosing moves to the next week: delete and add (the facilitator's way).
        cohorts.delete_session(first, actor=factories.user("facilitator", password=None), now=NOW)
        _dosing(c, utc(2026, 4, 14, 16), utc(2026, 4, 14, 20))
        assert len(calls) == 3
    finally:
        ip.PLAN_LISTENERS.remove(listener)  # only ours: the follow-up scheduler's stays
    db.session.expire_all()
    assert ic.plan_circles(c)[0].id == circle1.id  # moved in place, not recreated
    assert ic.plan_circles(c)[0].starts_at == utc(2026, 4, 22, 0)
    t2 = {t.kind: t.due_at_utc for t in ip.touchpoints(c)}
    assert all(t2[k] - t1[k] == timedelta(days=7) for k in t1)


def test_circle_with_attendance_or_rsvp_is_never_deleted_or_moved(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    enr, other = _member(c), _member(c)
    plan = ip.ensure_plan(c, NOW)
    circles = ic.plan_circles(c)
    facilitator = factories.user("facilitator", password=None)
    cohorts.record_attendance(circles[4], enr, status="present", actor=facilitator, now=NOW)
    ic.set_rsvp(other.participant, circles[5].id, status="cant_make_it", note="", now=NOW)
    ic.set_rsvp(other.participant, circles[3].id, status="going", note="", now=NOW)
    fc.new_request()
    report = ic.update_plan(plan, _form(plan, circle_weeks="2", circle_weekday="3"), expected_version=1,
                            actor=facilitator, now=NOW)
    db.session.expire_all()
    kept = {s.circle_sequence: why for s, why in report.kept}
    assert kept == {4: "participants have answered its RSVP", 5: "attendance has been taken",
                    6: "participants have answered its RSVP"}
    assert report.removed == [3]
    assert {s.circle_sequence for s in report.moved} == {1, 2}
    assert [s.circle_sequence for s in ic.plan_circles(c)] == [1, 2, 4, 5, 6]
    assert ic.plan_circles(c)[3].starts_at == circles[4].starts_at  # the attended one did not move
    assert any("attendance" in m for m in report.messages)


def test_invites_and_reminders_are_queued_once_and_rescheduled_when_the_circle_moves(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr = _member(c)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    msgs = _messages(enr)
    assert len(msgs) == 6 * 3  # per circle: invite now, reminders 24 h and 1 h before
    first = ic.plan_circles(c)[0]
    by_key = {m.dedupe_key: m for m in msgs}
    assert by_key[f"circle-{first.id}-r0-enr-{enr.id}-reminder-24h"].due_at == first.starts_at - timedelta(hours=24)
    assert by_key[f"circle-{first.id}-r0-enr-{enr.id}-reminder-1h"].due_at == first.starts_at - timedelta(hours=1)
    invite = by_key[f"circle-{first.id}-r0-enr-{enr.id}-invite"]
    assert invite.ics["uid"] == f"circle-{first.id}@retreat" and invite.ics["sequence"] == 0
    assert invite.essential and not by_key[f"circle-{first.id}-r0-enr-{enr.id}-reminder-1h"].essential
    # Syncing again (and again) queues nothing new.
    ic.sync_circles(c, NOW)
    ic.sync_circles(c, NOW)
    assert len(_messages(enr)) == 18
    # The circles move to Thursdays: old reminders cancelled, new invite (sequence 1) and reminders.
    plan = ip.plan_for(c)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_weekday="3"), expected_version=plan.version,
                   actor=factories.user("facilitator", password=None), now=NOW)
    assert len(_messages(enr, status="cancelled")) == 18
    pending = _messages(enr, status="pending")
    assert len(pending) == 18
    moved = {m.dedupe_key: m for m in pending}
    assert moved[f"circle-{first.id}-r1-enr-{enr.id}-reminder-1h"].due_at == utc(2026, 2, 27, 0)  # Thu 17:00 MST
    assert moved[f"circle-{first.id}-r1-enr-{enr.id}-invite"].ics["sequence"] == 1
    assert moved[f"circle-{first.id}-r1-enr-{enr.id}-invite"].context["updated"] is True


def test_reminder_that_quiet_hours_would_push_past_the_circle_is_not_queued(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr = _member(c)
    plan = ip.ensure_plan(c, NOW)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_local_time="07:30"), expected_version=1,
                   actor=factories.user("facilitator", password=None), now=NOW)
    kinds = {m.dedupe_key.rsplit("-", 1)[-1] for m in _messages(enr, status="pending")}
    assert kinds == {"invite", "24h"}  # 06:30 is quiet until 08:00, after the 07:30 start


def test_withdrawn_participant_gets_no_more_circle_messages(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr, stays = _member(c), _member(c)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    assert len(_messages(enr, status="pending")) == 18
    enrollment.withdraw(enr, now=NOW, actor=enr.participant)
    assert _messages(enr, status="pending") == []
    plan = ip.plan_for(c)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_weekday="4"), expected_version=plan.version,
                   actor=factories.user("facilitator", password=None), now=NOW)
    assert _messages(enr, status="pending") == []
    assert len(_messages(stays, status="pending")) == 18
    assert ic.upcoming_circles(enr.participant, NOW) == []
    with pytest.raises(NotFound):
        ic.set_rsvp(enr.participant, ic.plan_circles(c)[0].id, status="cant_make_it", note="", now=NOW)


def test_opted_out_participant_gets_invites_but_no_reminders(db, app, smtp_server):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr = _member(c)
    enr.participant.marketing_opt_out = True
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    transport = transport_from_config({**app.config, **smtp_server.config()})
    first = ic.plan_circles(c)[0]
    def circle_mail():
        return [m for m in smtp_server.messages if "circle" in m["Subject"].lower()]

    dispatcher.dispatch_due(NOW, transport=transport)
    assert len(circle_mail()) == 6  # the six invites (essential)
    msg = circle_mail()[0]
    assert "Integration circle 1" in msg["Subject"]
    parts = [p.get_content_type() for p in msg.walk()]
    assert "text/calendar" in parts
    dispatcher.dispatch_due(first.starts_at - timedelta(minutes=30), transport=transport)
    assert len(circle_mail()) == 6  # the reminders are non-essential: cancelled for an opted-out person
    reminders = [m for m in _messages(enr) if "reminder" in m.dedupe_key and m.due_at < first.starts_at]
    assert len(reminders) == 2 and all(m.status == "cancelled" for m in reminders)


def test_rsvp_is_changeable_and_cant_make_it_stops_its_reminders(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr, other = _member(c), _member(c)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    circle = ic.plan_circles(c)[1]
    row = ic.set_rsvp(enr.participant, circle.id, status="cant_make_it", note="Travelling", now=NOW)
    assert (row.status, row.note) == ("cant_make_it", "Travelling")
    rem = [m for m in _messages(enr) if m.dedupe_key.startswith(f"circle-{circle.id}-") and "reminder" in m.dedupe_key]
    assert len(rem) == 2 and all(m.status == "cancelled" for m in rem)
    ic.set_rsvp(enr.participant, circle.id, status="going", note="", now=NOW)
    rem = [m for m in _messages(enr) if m.dedupe_key.startswith(f"circle-{circle.id}-") and "reminder" in m.dedupe_key]
    assert len(rem) == 2 and all(m.status == "pending" for m in rem)
    assert db.session.scalar(select(CircleRsvp).where(CircleRsvp.enrollment_id == enr.id)).status == "going"
    views = ic.upcoming_circles(enr.participant, NOW)
    assert len(views) == 6 and views[1].rsvp.status == "going"
    # Someone from another cohort cannot answer for this circle; a bad answer changes nothing.
    stranger = _member(_cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17)))
    with pytest.raises(NotFound):
        ic.set_rsvp(stranger.participant, circle.id, status="cant_make_it", note="", now=NOW)
    with pytest.raises(ValidationFailed):
        ic.set_rsvp(other.participant, circle.id, status="maybe", note="", now=NOW)
    with pytest.raises(Conflict):
        ic.set_rsvp(other.participant, circle.id, status="going", note="", now=circle.ends_at)
    rows = {r.enrollment.id: r for r in ic.rsvp_rows(circle)}
    assert rows[enr.id].rsvp.status == "going" and rows[other.id].rsvp is None


def test_stale_plan_edit_is_refused_and_changes_nothing(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    plan = ip.ensure_plan(c, NOW)
    ic.sync_circles(c, NOW)
    actor = factories.user("facilitator", password=None)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_weeks="4"), expected_version=1, actor=actor, now=NOW)
    assert plan.version == 2
    before = [s.starts_at for s in ic.plan_circles(c)]
    with pytest.raises(Conflict):
        fc.new_request()
        ic.update_plan(plan, _form(plan, circle_weekday="5"), expected_version=1, actor=actor, now=NOW)
    db.session.expire_all()
    assert (plan.version, plan.circle_weekday, plan.circle_weeks) == (2, 1, 4)
    assert [s.starts_at for s in ic.plan_circles(c)] == before


@pytest.mark.parametrize("field, value", [
    ("circle_weekday", "7"), ("circle_weekday", "-1"), ("circle_weekday", "Tue"),
    ("circle_weeks", "0"), ("circle_weeks", "53"), ("circle_weeks", ""),
    ("circle_local_time", "25:00"), ("circle_local_time", "6pm"), ("circle_local_time", "18:60"),
    ("circle_duration_minutes", "5"), ("circle_video_url", "javascript:alert(1)"),
    ("circle_facilitator_id", "999999"),
])
def test_bad_plan_input_gives_a_field_error_and_changes_nothing(db, field, value):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    plan = ip.ensure_plan(c, NOW)
    ic.sync_circles(c, NOW)
    before = [(s.id, s.starts_at) for s in ic.plan_circles(c)]
    with pytest.raises(ValidationFailed) as err:
        fc.new_request()
        ic.update_plan(plan, _form(plan, **{field: value}), expected_version=1,
                       actor=factories.user("facilitator", password=None), now=NOW)
    assert field in err.value.errors
    db.session.expire_all()
    assert plan.version == 1 and plan.circle_weeks == 6 and plan.circle_weekday == 1
    assert [(s.id, s.starts_at) for s in ic.plan_circles(c)] == before


def test_switching_follow_ups_off_is_saved(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    plan = ip.ensure_plan(c, NOW)
    form = _form(plan)
    del form["checkin_24h"], form["survey_month_3"]
    fc.new_request()
    ic.update_plan(plan, form, expected_version=1, actor=factories.user("facilitator", password=None), now=NOW)
    assert [t.kind for t in ip.touchpoints(c)] == ["checkin_72h", "survey_post", "survey_month_1"]


def test_a_participant_confirmed_later_is_invited_to_the_planned_circles(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    plan = ip.plan_for(c)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_weekday="2"), expected_version=plan.version,
                   actor=factories.user("facilitator", password=None), now=NOW)
    late = _member(c)
    invites = [m for m in _messages(late) if m.template == "circle_invite"]
    assert len(invites) == 6 and all(m.ics["sequence"] == 1 for m in invites)
    assert not any(m.context["updated"] for m in invites)  # never invited before: a plain invite
