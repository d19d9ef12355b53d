"""Quiet hours (21:00-08:00 in the recipient's zone) and opting out of non-essential messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retreat.messaging import dispatcher, outbox
from retreat.messaging.transport import transport_from_config
from retreat.models import OutboxMessage
from tests import factories


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rows(db) -> dict[str, OutboxMessage]:
    db.session.expire_all()
    return {m.dedupe_key: m for m in db.session.query(OutboxMessage)}


def test_quiet_hours_hold_non_essential_mail_until_eight_local_in_each_zone(db, smtp):
    now = utc(2026, 3, 3, 4, 30)  # Denver 21:30 MST, Berlin 05:30 CET, Tokyo 13:30 JST
    for key, tz, essential in [("denver", "America/Denver", False), ("berlin", "Europe/Berlin", False),
                               ("tokyo", "Asia/Tokyo", False), ("denver-essential", "America/Denver", True)]:
        outbox.enqueue(template="test_notice", dedupe_key=key, to_user=factories.user(tz=tz),
                       essential=essential, now=now)
    result = dispatcher.dispatch_due(now, transport=smtp.transport)
    assert result.sent == 2 and result.deferred == 2
    assert sorted(m.envelope_rcpt[0] for m in smtp.messages) == sorted(
        [r.recipient_email for k, r in rows(db).items() if k in ("tokyo", "denver-essential")])
    r = rows(db)
    assert r["denver"].status == "pending" and r["denver"].next_attempt_at == utc(2026, 3, 3, 15, 0)
    assert r["berlin"].status == "pending" and r["berlin"].next_attempt_at == utc(2026, 3, 3, 7, 0)
    assert r["denver"].attempts == 0  # waiting is not a failed attempt

    assert dispatcher.dispatch_due(utc(2026, 3, 3, 6, 59), transport=smtp.transport).claimed == 0
    assert dispatcher.dispatch_due(utc(2026, 3, 3, 7, 0), transport=smtp.transport).sent == 1  # Berlin 08:00
    assert dispatcher.dispatch_due(utc(2026, 3, 3, 15, 0), transport=smtp.transport).sent == 1  # Denver 08:00
    assert all(m.status == "sent" for m in rows(db).values())


def test_quiet_hours_on_the_dst_change_night():
    # Denver springs forward on 8 March 2026 (02:00 MST -> 03:00 MDT): the next 08:00 is MDT.
    night = utc(2026, 3, 8, 4, 0)  # 21:00 MST on 7 March
    assert dispatcher.quiet_until(night, "America/Denver") == utc(2026, 3, 8, 14, 0)  # 08:00 MDT
    assert dispatcher.quiet_until(utc(2026, 3, 8, 9, 30), "America/Denver") == utc(2026, 3, 8, 14, 0)  # 03:30 MDT
    # ... and falls back on 1 November 2026: 08:00 MST is 15:00 UTC.
    assert dispatcher.quiet_until(utc(2026, 11, 1, 7, 30), "America/Denver") == utc(2026, 11, 1, 15, 0)
    assert dispatcher.quiet_until(utc(2026, 3, 8, 14, 0), "America/Denver") is None  # 08:00 exactly
    assert dispatcher.quiet_until(utc(2026, 3, 8, 3, 59), "America/Denver") is None  # 20:59 MST


def test_dst_night_deferral_through_the_dispatcher(db, smtp):
    night = utc(2026, 3, 8, 4, 0)
    outbox.enqueue(template="test_notice", dedupe_key="dst", to_user=factories.user(tz="America/Denver"),
                   essential=False, now=night)
    assert dispatcher.dispatch_due(night, transport=smtp.transport).deferred == 1
    assert rows(db)["dst"].next_attempt_at == utc(2026, 3, 8, 14, 0)
    assert dispatcher.dispatch_due(utc(2026, 3, 8, 14, 0), transport=smtp.transport).sent == 1


def test_opted_out_participant_gets_essential_mail_only(db, smtp):
    now = utc(2026, 3, 3, 18, 0)  # 11:00 in Denver
    user = factories.user(tz="America/Denver", marketing_opt_out=True)
    outbox.enqueue(template="test_notice", dedupe_key="news", to_user=user, essential=False, now=now)
    outbox.enqueue(template="test_notice", dedupe_key="confirm", to_user=user, essential=True, now=now)
    # A guest address that belongs to an opted-out account is honoured too.
    outbox.enqueue(template="test_notice", dedupe_key="news-by-email", to_email=user.email, essential=False, now=now)
    result = dispatcher.dispatch_due(now, transport=smtp.transport)
    assert result.sent == 1 and result.cancelled == 2 and smtp.count() == 1
    r = rows(db)
    assert r["confirm"].status == "sent"
    for key in ("news", "news-by-email"):
        assert r[key].status == "cancelled" and r[key].last_error == dispatcher.OPTED_OUT_REASON
        assert r[key].cancelled_at == now
