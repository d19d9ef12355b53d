"""The SMS reminders page (/account/sms) and the inbound SMS webhook (/webhooks/sms)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.accounts import phone
from retreat.blueprints.webhooks.sms import twilio_signature
from retreat.extensions import db as _db
from retreat.messaging import outbox, sms_outbox
from retreat.messaging.sms_models import SmsMessage
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import is_postgres, signed_in
from tests.web.test_finance_query_counts import counting

E164 = "+13035550142"
TOKEN = "twilio-auth-token-test"


def _code(user) -> str:
    msg = _db.session.scalar(select(SmsMessage).where(SmsMessage.recipient_user_id == user.id,
                                                      SmsMessage.status == "pending").order_by(SmsMessage.id.desc()))
    return sms_outbox.code_of(msg)


def _sms_count() -> int:
    return _db.session.scalar(select(func.count()).select_from(SmsMessage))


@pytest.fixture()
def person(db):
    return factories.user("participant", password=None, tz="Europe/Berlin")


def test_opt_in_with_a_code_then_turn_off_and_remove(app, person):
    c = signed_in(app, person)
    page = c.get("/account/settings").get_data(as_text=True)
    assert "/account/sms" in page
    r = c.get("/account/sms")
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("no-store")
    assert "You have not added a mobile number" in r.get_data(as_text=True)

    r = c.post("/account/sms/number", data={"number-phone": "+1 303 555 0142"})
    assert r.status_code == 303
    page = c.get("/account/sms").get_data(as_text=True)
    assert "We texted you a 6-digit code" in page and "+1 303-555-0142" in page
    code = _code(person)

    wrong = "000000" if code != "000000" else "111111"
    r = c.post("/account/sms/verify", data={"code-code": wrong})
    assert r.status_code == 422 and "That code is not right. 4 tries left." in r.get_data(as_text=True)
    assert phone.for_user(person).code_attempts == 1  # the wrong try is counted (kept)
    assert phone.verified_number(person.id) is None

    r = c.post("/account/sms/verify", data={"code-code": code}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "Your number is verified. SMS reminders are on." in page and "SMS reminders on" in page
    assert phone.verified_number(person.id) == E164

    r = c.post("/account/sms/off", data={}, follow_redirects=True)
    assert "SMS reminders are off" in r.get_data(as_text=True) and phone.verified_number(person.id) is None
    c.post("/account/sms/on", data={})
    assert phone.verified_number(person.id) == E164
    r = c.post("/account/sms/remove", data={}, follow_redirects=True)
    assert "Your number is removed" in r.get_data(as_text=True) and phone.for_user(person) is None
    actions = list(_db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("phone.%"))
                                       .order_by(AuditEvent.id)))
    assert actions == ["phone.code_sent", "phone.verified", "phone.sms_off", "phone.sms_on", "phone.removed"]


@pytest.mark.parametrize("raw, message", [
    ("", "Enter your mobile number."),
    ("not a number", "That is not a phone number."),
    ("+1 555 0100", "That number does not exist."),
    ("+1 303 555 0142" + "9" * 40, "That is not a phone number."),
])
def test_a_bad_number_gets_a_form_error_and_changes_nothing(app, person, raw, message):
    c = signed_in(app, person)
    r = c.post("/account/sms/number", data={"number-phone": raw})
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert _sms_count() == 0 and phone.for_user(person) is None


def test_an_expired_code_and_a_code_asked_for_too_soon(app, person):
    c = signed_in(app, person)
    c.post("/account/sms/number", data={"number-phone": "+13035550142"})
    r = c.post("/account/sms/number", data={"number-phone": "+13035550142"})
    assert r.status_code == 422 and "Please wait" in r.get_data(as_text=True) and _sms_count() == 1
    row = phone.for_user(person)
    row.code_expires_at = now_utc() - timedelta(seconds=1)
    _db.session.commit()
    r = c.post("/account/sms/verify", data={"code-code": _code(person)})
    assert r.status_code == 422 and "This code has expired. Ask for a new code." in r.get_data(as_text=True)
    assert phone.verified_number(person.id) is None
    r = c.post("/account/sms/verify", data={"code-code": ""})
    assert r.status_code == 422 and "Enter the 6-digit code" in r.get_data(as_text=True)


@pytest.mark.parametrize("role", ["facilitator", "finance", "provider", "admin"])
def test_staff_have_no_sms_page(app, db, role):
    c = signed_in(app, factories.user(role, password=None))
    assert c.get("/account/sms").status_code == 403
    assert c.post("/account/sms/number", data={"number-phone": "+13035550142"}).status_code == 403


def test_sms_page_statement_count_is_bounded(app, person):
    c = signed_in(app, person)
    c.get("/account/sms")
    with counting() as statements:
        assert c.get("/account/sms").status_code == 200
    assert len(statements) <= 6, statements


# Inbound webhook -----------------------------------------------------------------------------


def _verified(person):
    phone.request_code(person, E164, now=now_utc())
    phone.verify(person, _code(person), now=now_utc())
    _db.session.commit()


def _post(client, form: dict, *, signature: str | None = None):
    sig = signature if signature is not None else twilio_signature(TOKEN, "http://localhost/webhooks/sms", form)
    return client.post("/webhooks/sms", data=form, headers={"X-Twilio-Signature": sig})


@pytest.fixture()
def twilio_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)


def test_stop_and_start_by_text_with_a_valid_signature(app, person, twilio_token):
    _verified(person)
    outbox.enqueue(template="test_notice", dedupe_key="w-1", to_user=person, due_at=now_utc() + timedelta(hours=5),
                   sms={"template": "checkin_waiting", "link": "http://localhost/me/"})
    _db.session.commit()
    client = app.test_client()
    form = {"From": E164, "To": "+15005550006", "Body": "Stop", "MessageSid": "SM1"}
    r = _post(client, form)
    assert r.status_code == 200 and r.mimetype == "text/xml" and "<Response/>" in r.get_data(as_text=True)
    assert phone.verified_number(person.id) is None
    assert _db.session.scalar(select(SmsMessage.status).where(SmsMessage.dedupe_key == "w-1:sms")) == "cancelled"
    assert _db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "phone.sms_stopped"))
    page = signed_in(app, person).get("/account/sms").get_data(as_text=True)
    assert "You replied STOP" in page
    r = _post(client, {**form, "Body": "START", "MessageSid": "SM2"})
    assert r.status_code == 200 and phone.verified_number(person.id) == E164
    # The reminder still ahead gets its text again (the same row: never two).
    _db.session.expire_all()
    assert _db.session.scalars(select(SmsMessage.status).where(SmsMessage.dedupe_key == "w-1:sms")).all() == [
        "pending"]
    r = _post(client, {**form, "Body": "help", "MessageSid": "SM3"})
    assert "<Message>" in r.get_data(as_text=True) and "Reply STOP" in r.get_data(as_text=True)


def test_a_bad_or_missing_signature_is_403_and_changes_nothing(app, person, twilio_token):
    _verified(person)
    client = app.test_client()
    form = {"From": E164, "To": "+15005550006", "Body": "STOP", "MessageSid": "SM1"}
    assert _post(client, form, signature="bm9wZQ==").status_code == 403
    assert client.post("/webhooks/sms", data=form).status_code == 403
    forged = twilio_signature("another-token", "http://localhost/webhooks/sms", form)
    assert _post(client, form, signature=forged).status_code == 403
    tampered = twilio_signature(TOKEN, "http://localhost/webhooks/sms", {**form, "Body": "HELLO"})
    assert _post(client, form, signature=tampered).status_code == 403
    assert phone.verified_number(person.id) == E164


def test_a_signed_request_without_a_sender_is_400(app, db, twilio_token):
    r = _post(app.test_client(), {"Body": "STOP"})
    assert r.status_code == 400 and "From and Body are required" in r.get_data(as_text=True)


def test_a_reminder_queued_before_the_number_is_texted_once_verified_on_the_page(app, person):
    """Queued while the person had no number: verifying it on /account/sms queues the text, turning SMS
    off and on again on the page cancels and re-queues it."""
    outbox.enqueue(template="test_notice", dedupe_key="early-1", to_user=person,
                   due_at=now_utc() + timedelta(hours=5), sms={"template": "checkin_waiting",
                                                              "link": "http://localhost/me/"})
    _db.session.commit()
    c = signed_in(app, person)
    assert c.post("/account/sms/number", data={"number-phone": "+1 303 555 0142"}).status_code == 303
    assert _sms_status("early-1:sms") == []
    r = c.post("/account/sms/verify", data={"code-code": _code(person)}, follow_redirects=True)
    assert "Your number is verified. SMS reminders are on." in r.get_data(as_text=True)
    assert _sms_status("early-1:sms") == ["pending"]
    c.post("/account/sms/off", data={})
    assert _sms_status("early-1:sms") == ["cancelled"]
    c.post("/account/sms/on", data={})
    assert _sms_status("early-1:sms") == ["pending"]


def _sms_status(key: str) -> list[str]:
    _db.session.expire_all()
    return list(_db.session.scalars(select(SmsMessage.status).where(SmsMessage.dedupe_key == key)))


@pytest.mark.parametrize("reminders", [1, 12])
def test_verifying_with_reminders_queued_is_bounded_whatever_their_number(app, person, reminders):
    """The texts of the reminders queued before go in one insert: as many statements for 1 as for 12."""
    for i in range(reminders):
        outbox.enqueue(template="test_notice", dedupe_key=f"many-{i}", to_user=person,
                       due_at=now_utc() + timedelta(hours=5 + i), sms={"template": "checkin_waiting",
                                                                      "link": "http://localhost/me/"})
    _db.session.commit()
    c = signed_in(app, person)
    c.post("/account/sms/number", data={"number-phone": "+1 303 555 0142"})
    code = _code(person)
    with counting() as statements:
        assert c.post("/account/sms/verify", data={"code-code": code}).status_code == 303
    _db.session.expire_all()
    assert _db.session.scalar(select(func.count()).select_from(SmsMessage).where(
        SmsMessage.dedupe_key.like("many-%:sms"), SmsMessage.status == "pending")) == reminders
    print(f"verify with {reminders} reminders queued: {len(statements)} statements")
    # PostgreSQL: one multi-row insert; SQLite (development only): a lookup and an insert a text.
    assert len(statements) <= (8 if is_postgres() else 7 + 2 * reminders), statements
