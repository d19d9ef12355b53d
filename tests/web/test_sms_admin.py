"""Admins see the SMS outbox (masked numbers, no codes); /metrics counts SMS as the "sms" channel."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from retreat.accounts import phone
from retreat.extensions import db as _db
from retreat.messaging import sms_outbox
from retreat.messaging.sms_models import SmsMessage
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting
from tests.web.test_metrics import AUTH, metrics_app, scrape, value  # noqa: F401  (fixture)


def test_admin_sms_outbox_shows_status_masked_number_and_no_code(app, db):
    person = factories.user(password=None)
    phone.request_code(person, "+13035550142", now=now_utc())
    code = sms_outbox.code_of(_db.session.query(SmsMessage).one())
    sms_outbox.enqueue(template="consult_reminder", dedupe_key="adm-1", to_number="+13035550142", user_id=person.id,
                       tz="America/Denver", context={"lead": "tomorrow", "start": "2026-06-02T16:00:00+00:00",
                                                     "link": "http://localhost/me/"},
                       due_at=now_utc() + timedelta(hours=3), now=now_utc())
    _db.session.commit()
    admin = signed_in(app, factories.user("admin", password=None))
    r = admin.get("/admin/messages/sms")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "+1 ••• 0142" in page and "+13035550142" not in page
    assert code not in page and "your verification code is ••••••" in page
    assert "your consultation is tomorrow at 10:00 (America/Denver). Details: http://localhost/me/" in page
    assert "/admin/messages/sms" in admin.get("/admin/messages").get_data(as_text=True)
    assert admin.get("/admin/messages/sms?status=nope").status_code == 400
    assert "No text messages with status failed" in admin.get("/admin/messages/sms?status=failed").get_data(as_text=True)
    with counting() as statements:
        assert admin.get("/admin/messages/sms").status_code == 200
    assert len(statements) <= 8, statements
    assert signed_in(app, factories.user("finance", password=None)).get("/admin/messages/sms").status_code == 403


def test_metrics_count_sms_by_status_and_failures(metrics_app, db):  # noqa: F811
    client = metrics_app.test_client()
    before = scrape(client)
    now = now_utc()
    sms_outbox.enqueue(template="checkin_waiting", dedupe_key="met-1", to_number="+13035550142", user_id=None, tz="UTC",
                       context={"link": "http://localhost/me/"}, due_at=now - timedelta(minutes=5), now=now)
    bad = sms_outbox.enqueue(template="checkin_waiting", dedupe_key="met-2", to_number="+13035550143", user_id=None,
                             tz="UTC", context={"link": "http://localhost/me/"}, due_at=now, now=now)
    _db.session.execute(update(SmsMessage).where(SmsMessage.id == bad.id).values(status="failed", last_error="x"))
    _db.session.commit()
    after = scrape(client)
    pending = dict(status="pending", kind="sms")
    assert value(after, "retreat_outbox_messages", **pending) - value(before, "retreat_outbox_messages", **pending) == 1
    assert value(after, "retreat_outbox_failed_messages", kind="sms") - \
        value(before, "retreat_outbox_failed_messages", kind="sms") == 1
    assert value(after, "retreat_outbox_due_messages") - value(before, "retreat_outbox_due_messages") == 1
