"""Reminders queued before an account holder verified a number (or while SMS was off) get their SMS
twins when the number is verified or SMS is turned on again: from the spec kept on the email row,
under the same keys (never two), only for emails still pending and ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from retreat.accounts import phone
from retreat.cohorts import enrollment, seats
from retreat.consults import booking as bookings
from retreat.extensions import db
from retreat.messaging import dispatcher, outbox, sms_outbox
from retreat.messaging.models import OutboxMessage
from retreat.messaging.sms_models import SmsMessage
from retreat.messaging.transport import transport_from_config
from tests import factories
from tests import factories_cohorts as fc
from tests import followup_helpers as fh
from tests.unit import test_integration_circles as tic
from tests.unit.test_consult_support import book, facilitator_with_hours

NOW = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
START = datetime(2026, 6, 3, 16, 0, tzinfo=UTC)  # Wed 12:00 New York, two days ahead
NUMBER, E164 = "+1 303 555 0142", "+13035550142"
OTHER, OTHER_E164 = "+1 720 555 0199", "+17205550199"


def _verify(user, now, number=NUMBER) -> None:
    phone.request_code(user, number, now=now)
    msg = db.session.scalar(select(SmsMessage).where(SmsMessage.recipient_user_id == user.id,
                                                     SmsMessage.template == "phone_verification",
                                                     SmsMessage.status == "pending").order_by(SmsMessage.id.desc()))
    phone.verify(user, sms_outbox.code_of(msg), now=now + timedelta(seconds=30))


def _texts(like: str, **where) -> list[SmsMessage]:
    db.session.expire_all()
    stmt = select(SmsMessage).where(SmsMessage.dedupe_key.like(like))
    for k, v in where.items():
        stmt = stmt.where(getattr(SmsMessage, k) == v)
    return list(db.session.scalars(stmt.order_by(SmsMessage.due_at)))


def _booked(user):
    facilitator_with_hours()
    return book(START, now=NOW, signed_in=user)


def test_a_consult_booked_before_the_number_is_verified_gets_its_reminder_texts(db):
    user = factories.user(email="grace@example.com", tz="America/New_York")
    b = _booked(user)
    assert _texts("consult-%") == []  # no number yet: emails only
    spec = db.session.scalar(select(OutboxMessage.sms_spec).where(
        OutboxMessage.dedupe_key == f"consult-{b.consult.id}-s0-reminder-1h"))
    assert spec["template"] == "consult_reminder" and spec["stale_after"] == START.isoformat()
    _verify(user, NOW + timedelta(hours=1))
    texts = _texts("consult-%")
    assert [t.dedupe_key for t in texts] == [f"consult-{b.consult.id}-s0-reminder-24h:sms",
                                             f"consult-{b.consult.id}-s0-reminder-1h:sms"]
    assert [t.due_at for t in texts] == [START - timedelta(hours=24), START - timedelta(hours=1)]
    assert all(t.status == "pending" and t.stale_after == START and t.to_number == E164 for t in texts)
    assert texts[0].context["lead"] == "tomorrow" and texts[0].context["link"].endswith("/me/")
    assert texts[0].recipient_tz == "America/New_York" and texts[0].group_key == f"consult:{b.consult.id}"
    # Verified again (the same number, then another): still one text per reminder, to the number of now.
    _verify(user, NOW + timedelta(hours=2))
    _verify(user, NOW + timedelta(hours=3), number=OTHER)
    texts = _texts("consult-%")
    assert len(texts) == 2 and {t.to_number for t in texts} == {OTHER_E164}
    assert {t.status for t in texts} == {"pending"}


def test_stop_then_start_requeues_only_the_reminders_still_ahead(db):
    user = factories.user(email="grace@example.com", tz="America/New_York")
    b = _booked(user)
    _verify(user, NOW)
    assert len(_texts("consult-%", status="pending")) == 2
    later = START - timedelta(hours=20)  # the 24 h reminder's time has passed
    phone.inbound(E164, "STOP", now=later)
    assert len(_texts("consult-%", status="cancelled")) == 2
    phone.inbound(E164, "START", now=later + timedelta(minutes=5))
    pending = _texts("consult-%", status="pending")
    assert [t.dedupe_key for t in pending] == [f"consult-{b.consult.id}-s0-reminder-1h:sms"]
    assert pending[0].due_at == START - timedelta(hours=1) and pending[0].cancelled_at is None
    assert [t.dedupe_key for t in _texts("consult-%", status="cancelled")] == [
        f"consult-{b.consult.id}-s0-reminder-24h:sms"]
    # The settings toggle does the same: off cancels, on re-queues, once.
    assert phone.set_sms(user, False, now=later + timedelta(minutes=10))
    assert _texts("consult-%", status="pending") == []
    assert phone.set_sms(user, True, now=later + timedelta(minutes=11))
    assert phone.set_sms(user, True, now=later + timedelta(minutes=12)) is False
    assert len(_texts("consult-%", status="pending")) == 1 and len(_texts("consult-%")) == 2


def test_a_cancelled_consult_gets_no_reminder_texts(db):
    user = factories.user(email="grace@example.com", tz="America/New_York")
    b = _booked(user)
    bookings.cancel(b.consult, by="participant", actor=user, base_url="http://localhost", now=NOW)
    _verify(user, NOW + timedelta(hours=1))
    assert _texts("consult-%") == []


def test_a_sent_email_gets_no_twin(app, db, smtp_server):
    user = factories.user(tz="America/New_York")
    outbox.enqueue(template="test_notice", dedupe_key="sent-1", to_user=user, due_at=NOW + timedelta(hours=2),
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/"}, now=NOW)
    outbox.enqueue(template="test_notice", dedupe_key="past-1", to_user=user, due_at=NOW - timedelta(minutes=5),
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/"}, now=NOW)
    outbox.enqueue(template="test_notice", dedupe_key="stale-1", to_user=user, due_at=NOW + timedelta(hours=3),
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/",
                        "stale_after": NOW + timedelta(minutes=10)}, now=NOW)
    db.session.flush()
    transport = transport_from_config({**app.config, **smtp_server.config()})
    dispatcher.dispatch_due(NOW + timedelta(hours=2, minutes=1), transport=transport)  # out before the number
    assert db.session.scalar(select(OutboxMessage.status).where(OutboxMessage.dedupe_key == "sent-1")) == "sent"
    _verify(user, NOW + timedelta(hours=2, minutes=2))
    # Sent, due already, or its event started: no twin for any of them.
    assert _texts("%:sms") == []


def test_circle_reminders_queued_before_the_number_get_their_texts(db):
    c = tic._cohort(tic.utc(2026, 2, 16, 16), tic.utc(2026, 2, 21, 17))
    enr = tic._member(c)
    tic._dosing(c, tic.utc(2026, 2, 20, 23), tic.utc(2026, 2, 21, 3))
    assert _texts("circle-%") == []
    _verify(enr.participant, tic.NOW + timedelta(hours=1))
    texts = _texts("circle-%")
    assert len(texts) == 6 * 2 and {t.template for t in texts} == {"circle_reminder"}
    emails = {m.dedupe_key + ":sms": m for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "circle_reminder"))}
    for t in texts:
        assert t.due_at == emails[t.dedupe_key].due_at and t.context["start"] > t.due_at.isoformat()
        assert t.stale_after == datetime.fromisoformat(t.context["start"]) and not t.essential
    fc.new_request()
    enrollment.withdraw(enr, now=tic.NOW + timedelta(hours=2), actor=enr.participant)
    _verify(enr.participant, tic.NOW + timedelta(hours=3), number=OTHER)
    assert _texts("circle-%", status="pending") == []  # withdrawn: its reminders and their texts stay cancelled


def test_checkin_reminders_queued_before_the_number_get_their_texts(db):
    s = fh.setup()
    enr = fc.applicant(s.cohort, now=fh.NOW)
    seats.take_hold(enr, now=fh.NOW, actor=None)
    enrollment.confirm_seat(enr, now=fh.NOW, actor=None)
    db.session.flush()
    assert _texts("followup-%") == []
    _verify(enr.participant, fh.NOW + timedelta(days=1))
    texts = _texts("followup-%")
    assert [t.due_at for t in texts] == [fh.DUE["checkin_24h"], fh.DUE["checkin_72h"]]
    assert {t.template for t in texts} == {"checkin_waiting"}  # surveys have no text
    assert all(t.stale_after is not None and t.stale_after > t.due_at for t in texts)


def test_a_check_in_moved_before_the_number_is_verified_is_texted_at_its_new_time(db):
    from retreat.integration import followups
    from tests.unit.test_discharge_checkins import DISCHARGED, _discharge

    s = fh.setup()
    enr = fh.confirmed(s)
    _discharge(enr, s.dosing)  # the check-ins (and their emails) move to count from the discharge
    _verify(enr.participant, fh.NOW + timedelta(days=1))
    texts = {t.dedupe_key: t for t in _texts("followup-%")}
    for kind, hours in (("checkin_24h", 24), ("checkin_72h", 72)):
        f = fh.followups_of(enr)[kind]
        twin = texts[f.outbox_dedupe_key + ":sms"]
        assert twin.due_at == DISCHARGED + timedelta(hours=hours)
        assert twin.stale_after == f.expires_at == twin.due_at + followups.CHECKIN_OPEN_FOR
