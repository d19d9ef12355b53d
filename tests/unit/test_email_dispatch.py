"""The dispatcher against a real SMTP server (aiosmtpd on loopback): content, headers, invites."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from retreat.messaging import dispatcher, outbox
from retreat.messaging.ics import event_spec
from retreat.messaging.transport import FileTransport, SmtpTransport, message_id, transport_from_config
from retreat.models import OutboxMessage
from tests import factories

NOON_DENVER = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # 12:00 MST


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def dispatch(smtp, now, **kw):
    return dispatcher.dispatch_due(now, transport=smtp.transport, **kw)


def _row(db, key) -> OutboxMessage:
    db.session.expire_all()
    return db.session.query(OutboxMessage).filter_by(dedupe_key=key).one()


def test_sends_multipart_email_with_calendar_invite_in_recipient_zone(db, smtp):
    user = factories.user(tz="America/Denver", name="Ada Lovelace", email="ada@example.com")
    start = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # 10:00 MDT (after the DST change)
    spec = event_spec(uid="consult-7@retreat", start=start, end=start + timedelta(minutes=30),
                      summary="Free consultation", attendee_email=user.email, sequence=2)
    outbox.enqueue(template="test_notice", dedupe_key="k-invite", to_user=user, essential=False, ics=spec,
                   context={"title": "Your consult", "start_at": start.isoformat(), "note": "See you soon."},
                   now=NOON_DENVER)
    result = dispatch(smtp, NOON_DENVER)
    assert result.sent == 1 and smtp.count() == 1
    msg = smtp.messages[0]
    assert msg.envelope_rcpt == ["ada@example.com"]
    assert msg["Subject"] == "Test notice: Your consult"
    assert msg["To"] == "Ada Lovelace <ada@example.com>"
    row = _row(db, "k-invite")
    assert msg["Message-ID"] == message_id(row.id, "k-invite", "retreat.localhost")
    assert row.status == "sent" and row.sent_at == NOON_DENVER and row.attempts == 1

    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Tuesday 10 March 2026, 10:00 (America/Denver)" in text and "See you soon." in text
    assert "<strong>Tuesday 10 March 2026, 10:00 (America/Denver)</strong>" in html
    assert "Open Meadow Retreats" in text and "Open Meadow Retreats" in html

    invites = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(invites) == 1
    assert invites[0].get_param("method") == "REQUEST" and invites[0].get_filename() == "invite.ics"
    cal = icalendar.Calendar.from_ical(invites[0].get_content())
    event = cal.walk("VEVENT")[0]
    assert str(cal["METHOD"]) == "REQUEST" and str(event["UID"]) == "consult-7@retreat"
    assert event["SEQUENCE"] == 2 and event.decoded("DTSTART") == start

    # Non-essential: one-click unsubscribe (RFC 8058) in headers and body.
    unsub = msg["List-Unsubscribe"]
    assert unsub.startswith("<http://localhost/unsubscribe/") and unsub.endswith(">")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsub.strip("<>") in text and unsub.strip("<>") in html


def test_essential_email_has_no_unsubscribe_and_text_only_template_works(db, smtp):
    user = factories.user(tz="UTC")
    outbox.enqueue(template="test_notice", dedupe_key="k-ess", to_user=user, essential=True,
                   context={"note": "Essential."}, now=NOON_DENVER)
    dispatch(smtp, NOON_DENVER)
    msg = smtp.messages[0]
    assert msg["List-Unsubscribe"] is None and "Unsubscribe" not in msg.get_body(("plain",)).get_content()


def test_cancel_invite_carries_method_cancel(db, smtp):
    user = factories.user()
    start = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    spec = event_spec(uid="consult-8@retreat", start=start, end=start + timedelta(hours=1),
                      summary="Consult", method="CANCEL", sequence=3)
    outbox.enqueue(template="test_notice", dedupe_key="k-cancel", to_user=user, ics=spec, now=NOON_DENVER)
    dispatch(smtp, NOON_DENVER)
    (part,) = [p for p in smtp.messages[0].iter_attachments() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "CANCEL"
    assert "STATUS:CANCELLED" in part.get_content()


def test_bad_messages_fail_with_reason_while_the_batch_continues(db, smtp):
    smtp.reject["refused@example.com"] = "550 5.1.1 No such mailbox"
    good = [f"good{i}@example.com" for i in range(3)]
    outbox.enqueue(template="test_notice", dedupe_key="g0", to_email=good[0], now=NOON_DENVER)
    outbox.enqueue(template="no_such_template", dedupe_key="bad-template", to_email="x@example.com", now=NOON_DENVER)
    outbox.enqueue(template="test_notice", dedupe_key="g1", to_email=good[1], now=NOON_DENVER)
    outbox.enqueue(template="test_notice", dedupe_key="bad-address", to_email="not an address", now=NOON_DENVER)
    outbox.enqueue(template="test_notice", dedupe_key="bad-rcpt", to_email="refused@example.com", now=NOON_DENVER)
    outbox.enqueue(template="test_notice", dedupe_key="bad-ics", to_email="y@example.com", now=NOON_DENVER,
                   ics={"uid": "u", "start": "2026-01-01T10:00:00+00:00", "end": "2026-01-01T09:00:00+00:00"})
    outbox.enqueue(template="test_notice", dedupe_key="g2", to_email=good[2], now=NOON_DENVER)

    result = dispatch(smtp, NOON_DENVER, batch_size=3)
    assert result.sent == 3 and result.failed == 4
    assert sorted(m["To"] for m in smtp.messages) == good
    reasons = {key: _row(db, key) for key in ("bad-template", "bad-address", "bad-rcpt", "bad-ics")}
    assert all(r.status == "failed" and r.attempts == 1 for r in reasons.values())
    assert "unknown email template 'no_such_template'" in reasons["bad-template"].last_error
    assert "invalid recipient address" in reasons["bad-address"].last_error
    assert "550" in reasons["bad-rcpt"].last_error and "No such mailbox" in reasons["bad-rcpt"].last_error
    assert "calendar" in reasons["bad-ics"].last_error
    assert dispatch(smtp, NOON_DENVER + timedelta(days=1)).claimed == 0  # failed rows stay failed


def test_temporary_failures_back_off_exponentially_then_fail(db, smtp, app):
    smtp.reject["busy@example.com"] = "451 4.3.0 Mailbox busy, try later"
    outbox.enqueue(template="test_notice", dedupe_key="busy", to_email="busy@example.com", now=NOON_DENVER)
    now, delays = NOON_DENVER, []
    for attempt in range(1, dispatcher.DEFAULT_MAX_ATTEMPTS):
        assert dispatch(smtp, now).retried == 1
        row = _row(db, "busy")
        assert row.status == "pending" and row.attempts == attempt and "451" in row.last_error
        delays.append(row.next_attempt_at - now)
        # Not due before the backoff has passed.
        assert dispatch(smtp, row.next_attempt_at - timedelta(seconds=1)).claimed == 0
        now = row.next_attempt_at
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16)]
    assert dispatch(smtp, now).failed == 1
    row = _row(db, "busy")
    assert row.status == "failed" and row.attempts == dispatcher.DEFAULT_MAX_ATTEMPTS
    assert row.last_error.startswith("gave up after 6 attempts") and "451" in row.last_error
    assert smtp.count() == 0


def test_unreachable_smtp_server_is_a_temporary_failure(db, smtp):
    outbox.enqueue(template="test_notice", dedupe_key="down", to_email="a@example.com", now=NOON_DENVER)
    outbox.enqueue(template="test_notice", dedupe_key="down-2", to_email="b@example.com", now=NOON_DENVER)
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    result = dispatcher.dispatch_due(NOON_DENVER, transport=SmtpTransport("127.0.0.1", closed_port, starttls=False))
    assert result.retried == 2  # the whole batch waits for the next attempt
    row = _row(db, "down")
    assert row.status == "pending" and "connect" in row.last_error
    assert dispatch(smtp, row.next_attempt_at).sent == 2 and smtp.count() == 2


def test_expired_lease_is_reclaimed_and_resent_with_same_message_id(db, smtp):
    msg = outbox.enqueue(template="test_notice", dedupe_key="leased", to_email="a@example.com", now=NOON_DENVER)
    # A dispatcher claimed it and died: the row is left in `sending` with a lease.
    msg.status, msg.leased_by, msg.attempts = "sending", "dead-worker", 1
    msg.lease_until = msg.next_attempt_at = NOON_DENVER + timedelta(minutes=5)
    db.session.flush()
    assert dispatch(smtp, NOON_DENVER + timedelta(minutes=4)).claimed == 0  # lease still held
    assert dispatch(smtp, NOON_DENVER + timedelta(minutes=5, seconds=1)).sent == 1
    row = _row(db, "leased")
    assert row.status == "sent" and row.attempts == 2 and row.leased_by is None
    assert smtp.messages[0]["Message-ID"] == message_id(row.id, "leased", "retreat.localhost")


def test_file_transport_writes_eml_and_logs(db, app, tmp_path, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("retreat.mail"), "disabled", False)  # see alembic fileConfig
    outbox.enqueue(template="test_notice", dedupe_key="file-1", to_email="f@example.com",
                   context={"note": "on disk"}, now=NOON_DENVER)
    with caplog.at_level("INFO", logger="retreat.mail"):
        result = dispatcher.dispatch_due(NOON_DENVER, transport=FileTransport(tmp_path))
    assert result.sent == 1
    row = _row(db, "file-1")
    eml = (tmp_path / f"{row.id}.eml").read_bytes()
    assert b"Subject: Test notice: hello" in eml and b"on disk" in eml
    assert any(f"email {row.id} to f@example.com" in r.getMessage() for r in caplog.records)


def test_default_transport_is_the_file_transport(app):
    t = transport_from_config(app.config)
    assert isinstance(t, FileTransport) and str(t.directory) == app.config["MAIL_OUTBOX_DIR"]


def test_non_ascii_names_subjects_and_bodies_survive_and_cannot_inject_headers(db, smtp):
    user = factories.user(tz="Europe/Berlin", name="Zoë Ångström", email="zoe@example.com")
    outbox.enqueue(template="test_notice", dedupe_key="utf8", to_user=user, now=NOON_DENVER,
                   to_name="Zoë Ångström\r\nBcc: evil@example.com",
                   context={"title": "Café\nBcc: evil@example.com", "note": "Grüße – see you ☀ <b>bold</b>"})
    assert dispatch(smtp, NOON_DENVER).sent == 1
    msg = smtp.messages[0]
    assert msg.envelope_rcpt == ["zoe@example.com"] and msg["Bcc"] is None
    assert msg["To"].addresses[0].display_name == "Zoë Ångström Bcc: evil@example.com"
    assert msg["Subject"] == "Test notice: Café Bcc: evil@example.com"
    assert "Grüße – see you ☀ <b>bold</b>" in msg.get_body(("plain",)).get_content()
    assert "Grüße – see you ☀ &lt;b&gt;bold&lt;/b&gt;" in msg.get_body(("html",)).get_content()  # escaped
