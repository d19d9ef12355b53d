"""Links are built when a message is sent (issue #22 item 6): a message queued under one BASE_URL
and sent after BASE_URL changed carries the new address, in its body, its sealed links and its
unsubscribe header (a real SMTP server on loopback receives it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from retreat.messaging import dispatcher, links, outbox
from retreat.messaging.render import preview
from retreat.messaging.transport import transport_from_config
from retreat.models import OutboxMessage

OLD = "https://old.example.org"
NEW = "https://retreats.example.org"
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # outside the recipient's quiet hours (UTC)


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def _body(message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "\n".join(p.get_payload(decode=True).decode() for p in parts if not p.is_multipart())


def _queue_reset(key: str, now) -> OutboxMessage:
    return outbox.enqueue(template="password_reset", dedupe_key=key, to_email="ada@example.com", essential=False,
                          context={"name": "Ada", "forgot_url": f"{OLD}/account/forgot-password"},
                          private={"reset_url": f"{OLD}/account/reset-password/tok-123"}, now=now)


def test_a_message_queued_before_a_base_url_change_is_sent_with_the_new_address(app, db, smtp, monkeypatch):
    now = NOON
    monkeypatch.setitem(app.config, "BASE_URL", OLD)
    msg = _queue_reset("links-moved", now)
    db.session.commit()
    assert msg.link_origin == OLD
    monkeypatch.setitem(app.config, "BASE_URL", NEW)
    assert f"{NEW}/account/forgot-password" in preview(msg).text  # the operator's preview agrees

    result = dispatcher.dispatch_due(now + timedelta(seconds=1), transport=smtp.transport)
    assert result.sent == 1, result.errors
    sent = smtp.messages[-1]
    body = _body(sent)
    assert f"{NEW}/account/reset-password/tok-123" in body  # the sealed link
    assert f"{NEW}/account/forgot-password" in body  # the plain context's link
    assert OLD not in body
    assert sent["List-Unsubscribe"].startswith(f"<{NEW}/unsubscribe/")


def test_rows_queued_before_link_origin_existed_keep_their_links(app, db, smtp, monkeypatch):
    now = NOON
    monkeypatch.setitem(app.config, "BASE_URL", OLD)
    msg = _queue_reset("links-legacy", now)
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == msg.id).values(link_origin=None))
    db.session.commit()
    monkeypatch.setitem(app.config, "BASE_URL", NEW)
    assert dispatcher.dispatch_due(now + timedelta(seconds=1), transport=smtp.transport).sent == 1
    body = _body(smtp.messages[-1])
    assert f"{OLD}/account/reset-password/tok-123" in body  # nothing to go by: as written
    assert smtp.messages[-1]["List-Unsubscribe"].startswith(f"<{NEW}/unsubscribe/")  # built at send time


def test_a_reschedule_under_the_new_address_moves_the_kept_links_too(app, db, smtp, monkeypatch):
    now = NOON
    monkeypatch.setitem(app.config, "BASE_URL", OLD)
    _queue_reset("links-rescheduled", now)
    db.session.commit()
    monkeypatch.setitem(app.config, "BASE_URL", NEW)
    row = outbox.reschedule("links-rescheduled", now + timedelta(minutes=1), now=now,
                            context={"name": "Ada", "forgot_url": f"{NEW}/account/forgot-password"})
    db.session.commit()
    assert row.link_origin == NEW
    assert dispatcher.dispatch_due(now + timedelta(minutes=2), transport=smtp.transport).sent == 1
    body = _body(smtp.messages[-1])
    assert f"{NEW}/account/reset-password/tok-123" in body and OLD not in body


@pytest.mark.parametrize("text, expected", [
    (OLD, NEW),
    (f"{OLD}/", f"{NEW}/"),
    (f"{OLD}/me/payments/4?tab=1#x", f"{NEW}/me/payments/4?tab=1#x"),
    (f"Open {OLD}/me today", f"Open {NEW}/me today"),
    (f"<a href=\"{OLD}/me\">", f"<a href=\"{NEW}/me\">"),
    (f"{OLD}.evil.example/me", f"{OLD}.evil.example/me"),  # another host that starts like it
    (f"{OLD}:8443/me", f"{OLD}:8443/me"),                  # another port
    ("http://old.example.org/me", "http://old.example.org/me"),  # another scheme
])
def test_rebase_moves_only_links_under_the_old_origin(text, expected):
    assert links.rebase(text, OLD, NEW) == expected


def test_rebase_walks_nested_plain_data():
    data = {"url": f"{OLD}/a", "n": 3, "items": [f"{OLD}/b", {"deep": f"{OLD}/c"}], "none": None}
    assert links.rebase(data, OLD, NEW) == {"url": f"{NEW}/a", "n": 3, "items": [f"{NEW}/b", {"deep": f"{NEW}/c"}],
                                            "none": None}
    assert links.rebase(data, None, NEW) is data and links.rebase(data, OLD, OLD) is data
