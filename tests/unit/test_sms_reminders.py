"""Circle and check-in reminders go by SMS too (one per reminder), move and are cancelled with their emails."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from retreat.cohorts import enrollment, seats
from retreat.extensions import db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.messaging.sms_models import SmsMessage
from tests import factories
from tests import factories_cohorts as fc
from tests import followup_helpers as fh
from tests.unit.test_integration_circles import NOW, _cohort, _dosing, _form, _member, utc
from tests.unit.test_sms import verified


def _sms(prefix: str, *, status: str | None = None) -> list[SmsMessage]:
    db.session.expire_all()
    q = select(SmsMessage).where(SmsMessage.dedupe_key.like(f"{prefix}%")).order_by(SmsMessage.due_at)
    if status:
        q = q.where(SmsMessage.status == status)
    return list(db.session.scalars(q))


def test_circle_reminders_by_sms_move_with_the_circles_and_stop_when_leaving(db):
    c = _cohort(utc(2026, 2, 16, 16), utc(2026, 2, 21, 17))
    enr = _member(c)
    verified(enr.participant)
    _dosing(c, utc(2026, 2, 20, 23), utc(2026, 2, 21, 3))
    texts = _sms("circle-")
    assert len(texts) == 6 * 2  # the 24 h and 1 h reminders of six circles; no SMS for the invites
    first = ic.plan_circles(c)[0]
    one = {t.dedupe_key: t for t in texts}[f"circle-{first.id}-r0-enr-{enr.id}-reminder-1h:sms"]
    assert one.due_at == first.starts_at - timedelta(hours=1) and one.stale_after == first.starts_at
    assert one.context["link"].endswith("/me/circles") and one.context["lead"] == "in one hour"
    ic.sync_circles(c, NOW)
    assert len(_sms("circle-")) == 12  # saving again queues nothing new
    plan = ip.plan_for(c)
    fc.new_request()
    ic.update_plan(plan, _form(plan, circle_weekday="3"), expected_version=plan.version,
                   actor=factories.user("facilitator", password=None), now=NOW)
    assert len(_sms("circle-", status="cancelled")) == 12 and len(_sms("circle-", status="pending")) == 12
    fc.new_request()
    enrollment.withdraw(enr, now=NOW, actor=enr.participant)
    assert _sms("circle-", status="pending") == []


def test_checkin_reminders_by_sms_and_none_for_surveys(db):
    s = fh.setup()
    enr = fc.applicant(s.cohort, now=fh.NOW)
    verified(enr.participant)
    seats.take_hold(enr, now=fh.NOW, actor=None)
    enrollment.confirm_seat(enr, now=fh.NOW, actor=None)
    db.session.flush()
    texts = _sms("followup-")
    assert sorted(t.due_at for t in texts) == [fh.DUE["checkin_24h"], fh.DUE["checkin_72h"]]
    assert {t.template for t in texts} == {"checkin_waiting"} and all(not t.essential for t in texts)
    fc.new_request()
    enrollment.withdraw(enr, now=fh.NOW, actor=enr.participant)
    assert _sms("followup-", status="pending") == []
