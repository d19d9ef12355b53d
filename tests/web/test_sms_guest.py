"""SMS for guests (issue #19 item 5): whoever booked a consult without an account adds a mobile
number on the booking's manage page, verifies the texted code, and gets the consult's reminders by
SMS; the texts move and stop with the booking, STOP stops them, the number is erased with the
booking and moves to the account that claims it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.accounts import phone
from retreat.blueprints.webhooks.sms import twilio_signature
from retreat.consults import booking as bookings
from retreat.consults import claims, guest_phone, notices
from retreat.consults import slots as free_times
from retreat.extensions import db as _db
from retreat.messaging import sms_outbox
from retreat.messaging.models import OutboxMessage
from retreat.messaging.sms_models import SmsMessage
from retreat.models import AuditEvent
from retreat.privacy import deletion, erasure
from retreat.privacy.export import export_participant_data
from retreat.timeutil import now_utc
from retreat.web.log_redaction import redact
from tests import factories
from tests.links import open_link
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator, claim_token, guest
from tests.web.test_finance_query_counts import counting

E164 = "+13035550142"
TOKEN = "twilio-auth-token-test"


@pytest.fixture()
def booked(client, db):
    """A guest record three days ahead, and the token-free manage page this client holds."""
    around_the_clock_facilitator()
    now = now_utc()
    start = free_times.next_free_slots(now + timedelta(days=3), now, limit=1)[0].start
    b = bookings.book(start=start, base_url=BASE_URL, now=now, **guest())
    db.session.commit()
    return b, open_link(client, f"/consult/manage/{b.manage_token}")


def _texts(consult, **where) -> list[SmsMessage]:
    _db.session.expire_all()
    stmt = select(SmsMessage).where(SmsMessage.group_key == f"consult:{consult.id}")
    for k, v in where.items():
        stmt = stmt.where(getattr(SmsMessage, k) == v)
    return list(_db.session.scalars(stmt.order_by(SmsMessage.due_at)))


def _code(consult) -> str:
    msg = _db.session.scalar(select(SmsMessage).where(SmsMessage.group_key == f"phone:consult:{consult.id}",
                                                      SmsMessage.status == "pending").order_by(SmsMessage.id.desc()))
    return sms_outbox.code_of(msg)


def _opt_in(client, url, consult):
    assert client.post(url + "/sms/number", data={"number-phone": "+1 303 555 0142"}).status_code == 303
    r = client.post(url + "/sms/verify", data={"code-code": _code(consult)})
    assert r.status_code == 303, r.get_data(as_text=True)[-800:]


def test_guest_opts_in_on_the_manage_page_and_gets_the_reminder_texts(client, booked):
    b, url = booked
    page = client.get(url).get_data(as_text=True)
    assert "Text message reminders" in page and "Text me a code" in page
    assert _texts(b.consult) == []  # nothing is texted before the number is verified

    r = client.post(url + "/sms/number", data={"number-phone": "+1 303 555 0142"})
    assert r.status_code == 303 and r.headers["Location"] == url + "#text-reminders"
    page = client.get(url).get_data(as_text=True)
    assert "We texted you a 6-digit code" in page and "+1 303-555-0142" in page and "Verify" in page
    code = _code(b.consult)
    wrong = "000000" if code != "000000" else "111111"
    r = client.post(url + "/sms/verify", data={"code-code": wrong})
    assert r.status_code == 422 and "That code is not right. 4 tries left." in r.get_data(as_text=True)
    assert guest_phone.number_of(b.consult).code_attempts == 1  # the wrong try is counted (kept)
    assert _texts(b.consult) == []

    r = client.post(url + "/sms/verify", data={"code-code": code}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "Your number is verified. We will text you before your call." in page and "Text reminders on" in page
    texts = _texts(b.consult, status="pending")
    prefix = f"consult-{b.consult.id}-s0-reminder"
    assert [t.dedupe_key for t in texts] == [f"{prefix}-24h:sms", f"{prefix}-1h:sms"]
    assert [t.due_at for t in texts] == [b.consult.start_at - timedelta(hours=24),
                                         b.consult.start_at - timedelta(hours=1)]
    assert all(t.to_number == E164 and t.recipient_user_id is None and t.recipient_tz == "America/New_York"
               and t.stale_after == b.consult.start_at for t in texts)
    body = sms_outbox.render(texts[0].template, texts[0].context, tz=texts[0].recipient_tz, first=True)
    assert "your consultation is tomorrow at" in body and f"/consult/booking/{b.consult.id}" in body
    assert b.manage_token not in body and "Reply STOP to opt out." in body
    notices.queue_reminder_texts(b.consult, now=now_utc(), base_url=BASE_URL)  # again: one text per reminder
    assert len(_texts(b.consult, status="pending")) == 2
    assert phone.verified_number(consultation_id=b.consult.id) == E164
    actions = list(_db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("phone.%"), AuditEvent.object_type == "consultation")))
    assert actions == ["phone.code_sent", "phone.verified"]

    r = client.post(url + "/sms/remove", data={}, follow_redirects=True)
    assert "Your number is removed" in r.get_data(as_text=True) and guest_phone.number_of(b.consult) is None
    assert {t.status for t in _texts(b.consult)} == {"cancelled"}


@pytest.mark.parametrize("raw, message", [
    ("", "Enter your mobile number."),
    ("not a number", "That is not a phone number."),
    ("+1 555 0100", "That number does not exist."),
])
def test_a_bad_number_gets_a_form_error_and_changes_nothing(client, booked, raw, message):
    b, url = booked
    before = _db.session.scalar(select(func.count()).select_from(SmsMessage))
    r = client.post(url + "/sms/number", data={"number-phone": raw})
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert guest_phone.number_of(b.consult) is None
    assert _db.session.scalar(select(func.count()).select_from(SmsMessage)) == before


def test_without_the_manage_link_the_sms_routes_refuse_and_hold_no_token(app, booked):
    b, url = booked
    stranger = app.test_client()
    for path in ("/sms/number", "/sms/verify", "/sms/remove"):
        r = stranger.post(url + path, data={"number-phone": E164, "code-code": "123456"})
        assert r.status_code == 400 and "opens from the link in your confirmation email" in r.get_data(as_text=True)
    assert guest_phone.number_of(b.consult) is None
    # The routes carry no token (the manage link's token stays in the session); the link itself is redacted.
    assert re.fullmatch(r"/consult/booking/\d+", url)
    assert b.manage_token not in redact(f"GET /consult/manage/{b.manage_token}/cancel")


def test_a_reschedule_moves_the_texts_and_a_cancellation_cancels_them(client, booked):
    b, url = booked
    _opt_in(client, url, b.consult)
    old = _texts(b.consult, status="pending")
    now = now_utc()
    new_start = free_times.next_free_slots(b.consult.start_at + timedelta(days=2), now, limit=1)[0].start
    r = client.post(url + "/reschedule", data={"start": new_start.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert r.status_code == 303 and r.headers["Location"] == url
    texts = _texts(b.consult)
    assert {t.dedupe_key: t.status for t in texts if t.id in {o.id for o in old}} == {
        o.dedupe_key: "cancelled" for o in old}
    pending = [t for t in texts if t.status == "pending"]
    assert [t.due_at for t in pending] == [new_start - timedelta(hours=24), new_start - timedelta(hours=1)]
    assert all(t.dedupe_key.startswith(f"consult-{b.consult.id}-s1-") and t.to_number == E164 for t in pending)
    assert "Text reminders on" in client.get(url).get_data(as_text=True)  # the number stays with the booking

    assert client.post(url + "/cancel").status_code == 302
    assert {t.status for t in _texts(b.consult)} == {"cancelled"}
    page = client.get(url).get_data(as_text=True)
    assert "was cancelled" in page and "Text me a code" not in page  # nothing to remind of


@pytest.fixture()
def twilio_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)


def test_stop_from_the_guest_number_stops_its_texts(app, client, booked, twilio_token):
    b, url = booked
    _opt_in(client, url, b.consult)
    form = {"From": E164, "To": "+15005550006", "Body": "STOP", "MessageSid": "SM1"}
    sig = twilio_signature(TOKEN, "http://localhost/webhooks/sms", form)
    assert app.test_client().post("/webhooks/sms", data=form, headers={"X-Twilio-Signature": sig}).status_code == 200
    assert {t.status for t in _texts(b.consult)} == {"cancelled"}
    assert phone.verified_number(consultation_id=b.consult.id) is None
    assert "You replied STOP" in client.get(url).get_data(as_text=True)


def test_claiming_the_booking_moves_the_number_to_the_account(client, booked):
    b, url = booked
    _opt_in(client, url, b.consult)
    consult, _ = claims.confirm_owner(claim_token(b.consult), now=now_utc())
    _db.session.commit()
    owner = consult.participant
    assert phone.verified_number(owner.id) == E164 and guest_phone.number_of(consult) is None
    texts = _texts(consult, status="pending")
    assert len(texts) == 2 and all(t.recipient_user_id == owner.id for t in texts)
    # As the account's texts now: turning SMS off in the account cancels them.
    phone.set_sms(owner, False, now=now_utc())
    assert {t.status for t in _texts(consult)} == {"cancelled"}


def test_claiming_into_an_account_with_its_own_number_keeps_that_one(client, booked):
    b, url = booked
    _opt_in(client, url, b.consult)
    person = factories.user("participant", password=None, email="grace@example.com")
    phone.request_code(person, "+1 720 555 0199", now=now_utc())
    code = sms_outbox.code_of(_db.session.scalar(select(SmsMessage).where(
        SmsMessage.group_key == f"phone:{person.id}", SmsMessage.status == "pending")))
    phone.verify(person, code, now=now_utc())
    _db.session.commit()
    consult, _ = claims.confirm_owner(claim_token(b.consult), now=now_utc())
    assert consult.participant_id == person.id and guest_phone.number_of(consult) is None
    assert phone.verified_number(person.id) == "+17205550199"
    texts = _texts(consult, status="pending")
    assert len(texts) == 2 and all(t.to_number == "+17205550199" and t.recipient_user_id == person.id for t in texts)


def test_the_number_is_in_the_export_masked_and_erased_with_the_booking(client, booked):
    b, url = booked
    _opt_in(client, url, b.consult)
    person = factories.user("participant", password=None, email="grace@example.com")
    admin = factories.user("admin", password=None)
    _db.session.commit()
    data = export_participant_data(person, person, ctx=None, now=now_utc())
    listed = data["guest_bookings_with_your_email"]
    assert [g["text_reminders_to"] for g in listed] == ["+1 ••• 0142"]
    assert E164 not in str(listed)

    req = deletion.request_deletion(person, reason="", now=now_utc()).request
    plan = {i.what: i.count for i in erasure.plan(person)["erased"]}
    assert plan["Phone numbers for text reminders"] == 1 and plan["Text messages"] >= 3
    erasure.carry_out(req, actor=admin, note="ok", now=now_utc())
    _db.session.commit()
    assert guest_phone.number_of(b.consult) is None
    texts = list(_db.session.scalars(select(SmsMessage).where(SmsMessage.group_key.like(f"%consult:{b.consult.id}"))))
    assert texts and all(t.status in ("cancelled", "sent") and t.to_number == erasure.ERASED_NUMBER
                         and t.private_enc is None and t.context == {} for t in texts)
    reminders = list(_db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.group_key == f"consult:{b.consult.id}", OutboxMessage.template == "consult_reminder")))
    assert reminders and all(m.sms_spec is None and m.context == {} for m in reminders)  # nothing to text kept


def test_a_booking_of_an_account_points_to_the_account_page(client, db):
    around_the_clock_facilitator()
    person = factories.user("participant", password=None, email="grace@example.com")
    now = now_utc()
    start = free_times.next_free_slots(now + timedelta(days=3), now, limit=1)[0].start
    b = bookings.book(start=start, base_url=BASE_URL, now=now, signed_in=person, **guest())
    db.session.commit()
    url = open_link(client, f"/consult/manage/{b.manage_token}")
    page = client.get(url).get_data(as_text=True)
    assert "set them up in your account" in page and "Text me a code" not in page
    r = client.post(url + "/sms/number", data={"number-phone": E164}, follow_redirects=True)
    assert "This booking belongs to an account: add your number in your account" in r.get_data(as_text=True)
    assert phone.of(phone.Owner(consultation_id=b.consult.id)) is None


def test_manage_page_statement_count_with_a_number(client, booked):
    b, url = booked
    _opt_in(client, url, b.consult)
    client.get(url)
    with counting() as statements:
        assert client.get(url).status_code == 200
    assert len(statements) <= 4, statements  # 2 measured on PostgreSQL: the booking and its number


def test_a_number_has_exactly_one_owner(db, booked):
    from sqlalchemy.exc import IntegrityError

    b, _ = booked
    person = factories.user("participant", password=None)
    for owners in ({}, {"user_id": person.id, "consultation_id": b.consult.id}):
        with pytest.raises(IntegrityError):
            with _db.session.begin_nested():
                _db.session.add(phone.PhoneNumber(sms_enabled=False, code_attempts=0, codes_in_window=0, **owners))
                _db.session.flush()
