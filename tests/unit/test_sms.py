"""SMS reminders: phone verification, the SMS outbox and dispatcher, transports (a real loopback
HTTP server in Twilio's shape), STOP/START, quiet hours, and reminders' SMS twins."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from retreat.accounts import phone
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox, sms_dispatcher, sms_outbox
from retreat.messaging.sms_models import SmsMessage
from retreat.messaging.sms_transport import FileSmsTransport, TwilioTransport
from retreat.models import AuditEvent
from tests import factories
from tests.conftest import is_postgres
from tests.unit.test_consult_support import book, facilitator_with_hours
from tests.webhook_receiver import Receiver

NOW = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 10:00 in Denver
NUMBER = "+1 303 555 0142"
E164 = "+13035550142"


def _code(user) -> str:
    msg = db.session.scalar(select(SmsMessage).where(SmsMessage.recipient_user_id == user.id,
                                                     SmsMessage.template == "phone_verification")
                            .order_by(SmsMessage.id.desc()))
    return sms_outbox.code_of(msg)


def verified(user=None, number=NUMBER):
    user = user or factories.user(tz="America/Denver")
    phone.request_code(user, number, now=NOW)
    phone.verify(user, _code(user), now=NOW + timedelta(minutes=1))
    return user


def _send(now, tmp_path):
    return sms_dispatcher.send_due(now, transport=FileSmsTransport(tmp_path))


# Numbers and verification ------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "hello", "+1 555", "12", "+99 123 456 789", "+1 303 555 0142\x00"])
def test_a_number_that_is_not_one_is_refused_with_a_message(db, raw):
    user = factories.user()
    with pytest.raises(ValidationFailed) as err:
        phone.request_code(user, raw, now=NOW)
    assert err.value.field == "phone" and err.value.message
    assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 0


def test_numbers_are_normalised_to_e164(db):
    assert phone.normalise("(303) 555-0142") == E164  # the default region, US
    assert phone.normalise("+49 30 1234567") == "+49301234567"


def test_the_code_is_texted_hashed_and_only_the_right_code_turns_sms_on(db, tmp_path):
    user = factories.user()
    row = phone.request_code(user, NUMBER, now=NOW)
    code = _code(user)
    assert len(code) == 6 and code.isdigit()
    assert code not in (row.code_hash or "") and E164 not in (row.pending_enc or "")  # hashed / encrypted
    assert phone.verified_number(user.id) is None  # not until verified
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(phone.WrongCode, match="4 tries left"):
        phone.verify(user, wrong, now=NOW + timedelta(minutes=1))
    assert phone.for_user(user).verified_at is None
    phone.verify(user, code, now=NOW + timedelta(minutes=2))
    row = phone.for_user(user)
    assert row.number == E164 and row.sms_on and phone.verified_number(user.id) == E164
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(user.id))))
    assert {"phone.code_sent", "phone.verified"} <= actions
    # The code SMS goes out at once (essential), to the number, with the STOP notice (the first one).
    result = _send(NOW + timedelta(minutes=3), tmp_path)
    assert result.sent == 1
    text = next(tmp_path.glob("*.txt")).read_text()
    assert text.startswith(f"To: {E164}") and code in text and text.rstrip().endswith("Reply STOP to opt out.")
    sent = db.session.scalar(select(SmsMessage).where(SmsMessage.template == "phone_verification"))
    assert sent.private_enc is None and sent.status == "sent"  # the code is not kept once sent


def test_expired_code_too_many_tries_and_resend_throttle(db):
    user = factories.user()
    phone.request_code(user, NUMBER, now=NOW)
    code = _code(user)
    with pytest.raises(ValidationFailed, match="expired"):
        phone.verify(user, code, now=NOW + timedelta(minutes=10, seconds=1))
    with pytest.raises(ValidationFailed, match="wait"):
        phone.request_code(user, NUMBER, now=NOW + timedelta(seconds=30))
    phone.request_code(user, NUMBER, now=NOW + timedelta(minutes=11))
    code = _code(user)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        with pytest.raises(phone.WrongCode):
            phone.verify(user, wrong, now=NOW + timedelta(minutes=12))
    with pytest.raises(ValidationFailed, match="Too many wrong codes"):
        phone.verify(user, code, now=NOW + timedelta(minutes=12))  # even the right one, now
    assert phone.verified_number(user.id) is None
    with pytest.raises(ValidationFailed, match="6-digit"):
        phone.verify(user, "12ab", now=NOW + timedelta(minutes=12))
    # Only the newest code is still queued: the older one was cancelled.
    statuses = Counter(db.session.scalars(select(SmsMessage.status).where(SmsMessage.recipient_user_id == user.id)))
    assert statuses == Counter({"cancelled": 1, "pending": 1})


def test_turn_off_and_remove_cancel_queued_messages(db):
    user = verified()
    sms_outbox.enqueue(template="checkin_waiting", dedupe_key="x-1", to_number=E164, user_id=user.id, tz="UTC",
                       context={"link": "http://localhost/me/"}, due_at=NOW + timedelta(hours=2), now=NOW)
    assert phone.set_sms(user, False, now=NOW) is True
    assert phone.verified_number(user.id) is None
    assert db.session.scalar(select(SmsMessage.status).where(SmsMessage.dedupe_key == "x-1")) == "cancelled"
    assert phone.set_sms(user, True, now=NOW) and phone.verified_number(user.id) == E164
    assert phone.remove(user, now=NOW) and phone.for_user(user) is None


# Reminders ---------------------------------------------------------------------------------


def test_a_consult_reminder_goes_by_sms_once_and_is_cancelled_with_the_consult(db, tmp_path):
    from retreat.consults import booking as bookings

    fac = facilitator_with_hours()
    owner = verified(factories.user(email="grace@example.com", tz="America/New_York"))
    start = datetime(2026, 6, 2, 16, 0, tzinfo=UTC)  # Tue 12:00 New York
    b = book(start, signed_in=owner)
    rows = db.session.scalars(select(SmsMessage).where(SmsMessage.template == "consult_reminder")).all()
    assert sorted(r.dedupe_key.rsplit("-", 1)[-1] for r in rows) == ["1h:sms", "24h:sms"]
    assert {r.due_at for r in rows} == {start - timedelta(hours=24), start - timedelta(hours=1)}
    # Queueing the same reminders again (a second save) adds nothing.
    from retreat.consults.notices import queue_guest_messages

    queue_guest_messages(b.consult, "http://localhost/x", now=NOW, base_url="http://localhost", event="booked")
    assert db.session.scalar(select(func.count()).select_from(SmsMessage).where(
        SmsMessage.template == "consult_reminder")) == 2
    # The 24 h reminder, as sent: the time in the person's zone, the portal link, no clinical words.
    result = _send(start - timedelta(hours=24), tmp_path)
    assert result.sent == 2  # the code, then the reminder
    bodies = [p.read_text() for p in sorted(tmp_path.glob("*.txt"))]
    reminder = next(b for b in bodies if "consultation" in b)
    assert "your consultation is tomorrow at 12:00 (America/New_York). Details: http://localhost/me/" in reminder
    assert "STOP" not in reminder  # the code was the first message to this number
    bookings.cancel(b.consult, by="facilitator", actor=fac, base_url="http://localhost",
                    now=start - timedelta(hours=20))
    left = db.session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key.like("%1h:sms")))
    assert left.status == "cancelled"


def test_no_sms_without_a_verified_number(db):
    user = factories.user()
    outbox.enqueue(template="test_notice", dedupe_key="k-1", to_user=user, sms={"template": "checkin_waiting",
                                                                              "link": "http://localhost/me/"})
    assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 0


def test_quiet_hours_move_a_reminder_to_8_local_and_a_stale_one_is_cancelled(db, tmp_path):
    user = verified()  # Denver
    _send(NOW, tmp_path)  # the code
    late = datetime(2026, 6, 2, 5, 0, tzinfo=UTC)  # 23:00 in Denver
    outbox.enqueue(template="test_notice", dedupe_key="ci-1", to_user=user, due_at=late, essential=False,
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/"}, now=NOW)
    outbox.enqueue(template="test_notice", dedupe_key="circle-1", to_user=user, due_at=late, essential=False,
                   sms={"template": "circle_reminder", "lead": "in one hour", "start": (late + timedelta(hours=1))
                        .isoformat(), "link": "http://localhost/me/circles", "stale_after": late + timedelta(hours=1)},
                   now=NOW)
    result = _send(late, tmp_path)
    assert result.sent == 0 and result.deferred == 1 and result.cancelled == 1
    row = db.session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == "ci-1:sms"))
    assert row.next_attempt_at == datetime(2026, 6, 2, 14, 0, tzinfo=UTC)  # 08:00 in Denver
    assert _send(datetime(2026, 6, 2, 14, 0, tzinfo=UTC), tmp_path).sent == 1


# STOP / START ------------------------------------------------------------------------------


def test_stop_turns_sms_off_and_cancels_queued_messages_start_turns_it_on(db):
    user = verified()
    outbox.enqueue(template="test_notice", dedupe_key="k-2", to_user=user, due_at=NOW + timedelta(hours=3),
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/"}, now=NOW)
    assert phone.inbound(E164, " stop ", now=NOW) is None
    assert phone.verified_number(user.id) is None
    assert db.session.scalar(select(SmsMessage.status).where(SmsMessage.dedupe_key == "k-2:sms")) == "cancelled"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "phone.sms_stopped")) == 1
    phone.inbound("+13035550142", "START", now=NOW)
    assert phone.verified_number(user.id) == E164
    assert "Reply STOP" in phone.inbound(E164, "help", now=NOW)


# Twilio-shaped transport against a real loopback HTTP server -------------------------------


def _twilio(receiver) -> TwilioTransport:
    return TwilioTransport(account_sid="AC123", auth_token="tok-secret", sender="+15005550006",
                           api_base=f"http://127.0.0.1:{receiver.server.server_address[1]}", timeout=2)


def test_twilio_transport_posts_the_rest_shape_retries_a_500_and_recovers(db):
    receiver = Receiver(status=201, body=b'{"sid": "SM0123456789abcdef"}', fail_next=1, fail_status=500,
                        fail_body=b'{"code": 20500, "message": "Internal Server Error"}').start()
    try:
        user = verified()
        result = sms_dispatcher.send_due(NOW + timedelta(minutes=2), transport=_twilio(receiver))
        assert (result.sent, result.retried) == (0, 1)
        row = db.session.scalar(select(SmsMessage))
        assert row.status == "pending" and "HTTP 500" in row.last_error and row.attempts == 1
        assert row.next_attempt_at == NOW + timedelta(minutes=3)  # backoff: 1 minute
        result = sms_dispatcher.send_due(NOW + timedelta(minutes=3), transport=_twilio(receiver))
        assert result.sent == 1
        db.session.refresh(row)
        assert row.status == "sent" and row.provider_message_id == "SM0123456789abcdef"
        assert len(receiver.received) == 2
        req = receiver.received[-1]
        assert req.path == "/2010-04-01/Accounts/AC123/Messages.json"
        assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"AC123:tok-secret").decode()
        form = parse_qs(req.body.decode())
        assert form["To"] == [E164] and form["From"] == ["+15005550006"]
        assert "verification code" in form["Body"][0] and phone.for_user(user).sms_on
    finally:
        receiver.stop()


def test_twilio_400_is_a_permanent_failure(db):
    receiver = Receiver(status=400, body=b'{"code": 21211, "message": "Invalid To Phone Number"}').start()
    try:
        verified()
        result = sms_dispatcher.send_due(NOW + timedelta(minutes=2), transport=_twilio(receiver))
        assert result.failed == 1
        row = db.session.scalar(select(SmsMessage))
        assert row.status == "failed" and "21211" in row.last_error
        assert sms_dispatcher.send_due(NOW + timedelta(hours=1), transport=_twilio(receiver)).claimed == 0
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_an_unreachable_provider_is_retried(db):
    receiver = Receiver().start()
    transport = _twilio(receiver)
    receiver.stop()
    receiver.server.server_close()
    verified()
    result = sms_dispatcher.send_due(NOW + timedelta(minutes=2), transport=transport)
    assert result.retried == 1 and db.session.scalar(select(SmsMessage.status)) == "pending"


# Two dispatchers -----------------------------------------------------------------------------


@pytest.mark.skipif(not is_postgres(), reason="SKIP LOCKED racing needs PostgreSQL")
def test_two_dispatchers_send_each_sms_once(committing_app):
    receiver = Receiver(status=201, body=b'{"sid": "SMx"}').start()
    n = 120
    try:
        with committing_app.app_context():
            for i in range(n):
                sms_outbox.enqueue(template="checkin_waiting", dedupe_key=f"race-{i}", to_number=f"+1303555{i:04d}",
                                   user_id=None, tz="UTC", context={"link": "http://localhost/me/"}, due_at=NOW,
                                   now=NOW, essential=True)
            db.session.commit()
        barrier = threading.Barrier(2)
        errors = []

        def run(name):
            try:
                with committing_app.app_context():
                    barrier.wait()
                    sms_dispatcher.send_due(NOW, worker=name, batch=10, transport=_twilio(receiver))
                    db.session.remove()
            except Exception as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        tos = Counter(parse_qs(r.body.decode())["To"][0] for r in receiver.received)
        assert len(tos) == n and set(tos.values()) == {1}
        with committing_app.app_context():
            assert db.session.scalar(select(func.count()).select_from(SmsMessage).where(SmsMessage.status == "sent")) == n
            db.session.remove()
    finally:
        receiver.stop()


def test_the_number_and_the_texts_are_in_the_data_export_and_encrypted_at_rest(db):
    from sqlalchemy import text

    from retreat.privacy.export import export_participant_data

    user = verified()
    data = export_participant_data(user, user, ctx=None, now=NOW + timedelta(minutes=5))
    assert data["sms"]["phone_number"] == E164 and data["sms"]["reminders_on"] is True
    assert [m["kind"] for m in data["text_messages_sent_to_you"]] == ["phone_verification"]
    raw = " ".join(str(v) for v in db.session.execute(text(
        "SELECT number_enc, number_hash FROM phone_numbers UNION ALL SELECT to_number_enc, to_hash FROM sms_messages"
    )).all())
    assert "3035550142" not in raw


@pytest.mark.parametrize("cfg, variable", [
    ({"SMS_TRANSPORT": "carrier-pigeon"}, "SMS_TRANSPORT"),
    ({"SMS_TRANSPORT": "twilio", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15005550006"}, "TWILIO_ACCOUNT_SID"),
    ({"SMS_TRANSPORT": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+1",
      "SMS_API_BASE": "ftp://x"}, "SMS_API_BASE"),
])
def test_a_bad_sms_configuration_refuses_to_start_naming_the_variable(cfg, variable):
    from retreat.config import ConfigurationError, check_sms

    with pytest.raises(ConfigurationError) as err:
        check_sms(cfg)
    assert err.value.variable == variable
    check_sms({})  # the file default needs nothing


def test_a_rescheduled_reminder_moves_its_sms_and_the_event_with_it(db, tmp_path):
    user = verified()
    due = NOW + timedelta(days=2)
    outbox.enqueue(template="test_notice", dedupe_key="mv-1", to_user=user, due_at=due, essential=False,
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/", "stale_after": due + timedelta(days=1)},
                   now=NOW)
    outbox.reschedule("mv-1", due + timedelta(days=3), now=NOW)
    row = db.session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == "mv-1:sms"))
    assert row.due_at == due + timedelta(days=3) and row.stale_after == due + timedelta(days=4)
    _send(NOW + timedelta(minutes=2), tmp_path)  # the code
    assert _send(due + timedelta(days=3), tmp_path).sent == 1
