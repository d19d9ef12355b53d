"""Item 18: saving the integration plan sends each participant at most one update per save, naming
only what changed, only when something they see changed; only time changes count as moves."""

from __future__ import annotations

from sqlalchemy import select, update

from retreat.extensions import db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.models import OutboxMessage
from tests import factories
from tests import factories_cohorts as fc
from tests.unit.test_integration_circles import NOW, _cohort, _dosing, _form, _member, utc


def _pending(template):
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template == template, OutboxMessage.status == "pending").order_by(OutboxMessage.id)))


def _invites_sent():
    db.session.execute(update(OutboxMessage).where(OutboxMessage.template == "circle_invite",
                                                   OutboxMessage.status == "pending").values(status="sent"))


def _save(c, **changes):
    plan = ip.plan_for(c)
    fc.new_request()
    report = ic.update_plan(plan, _form(plan, **changes), expected_version=plan.version,
                            actor=factories.user("facilitator", password=None), now=NOW)
    fc.new_request()
    return report


def test_one_update_per_person_per_save_naming_only_what_changed(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    a, b = _member(c), _member(c)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    _save(c, circle_location="Lodge")
    _invites_sent()  # everyone has their six invites

    report = _save(c)  # saved again, nothing changed
    assert report.summary == "no circle changed" and _pending("circles_updated") == []
    assert _pending("circle_invite") == []

    report = _save(c, circle_location="Barn, 2 Elm St")  # only the place
    assert report.moved == [] and report.summary == "6 places changed" and report.updated == 2
    mails = _pending("circles_updated")
    assert sorted(m.recipient_email for m in mails) == sorted([a.participant.email, b.participant.email])
    assert _pending("circle_invite") == []  # not one new invite per circle
    lines = mails[0].context["changes"]
    assert len(lines) == 6 and all("new place: Barn, 2 Elm St" in line and "now " not in line for line in lines)

    report = _save(c, circle_location="Barn, 2 Elm St", circle_weekday="3")  # only the weekday
    assert report.summary == "6 circles moved" and len(_pending("circles_updated")) == 4
    last = _pending("circles_updated")[-1].context["changes"]
    assert all("(was " in line and "place" not in line for line in last)

    facilitator = factories.user("facilitator", password=None)
    report = _save(c, circle_location="Barn, 2 Elm St", circle_weekday="3",
                   circle_facilitator_id=str(facilitator.id))  # nothing a participant sees
    assert report.changes == [] and len(_pending("circles_updated")) == 4 and _pending("circle_invite") == []


def test_fewer_weeks_and_a_move_in_one_save_is_one_email(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr = _member(c)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    _save(c, circle_location="Lodge")
    _invites_sent()
    report = _save(c, circle_location="Lodge", circle_weeks="4", circle_local_time="19:00")
    assert report.summary == "4 circles moved, 2 circles removed"
    [mail] = _pending("circles_updated")
    assert mail.recipient_email == enr.participant.email and len(mail.context["changes"]) == 6
    assert sum("is cancelled" in line for line in mail.context["changes"]) == 2
