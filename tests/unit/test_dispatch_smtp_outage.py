"""An SMTP outage longer than the retry budget: messages wait (backoff up to its cap) instead of
failing after OUTBOX_MAX_ATTEMPTS, then go out once when the server is back. Clock injected."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from retreat.messaging import dispatcher, outbox
from retreat.messaging.transport import SmtpTransport, transport_from_config
from retreat.models import OutboxMessage

T0 = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(db):
    db.session.expire_all()
    return {m.dedupe_key: m for m in db.session.query(OutboxMessage)}


def test_messages_outlive_a_long_smtp_outage_and_go_out_once(db, app, smtp_server):
    for i in range(3):
        outbox.enqueue(template="test_notice", dedupe_key=f"outage-{i}", to_email=f"p{i}@example.com", now=T0)
    down = SmtpTransport("127.0.0.1", _closed_port(), starttls=False, timeout=2)
    now, delays = T0, []
    tries = dispatcher.DEFAULT_MAX_ATTEMPTS + 4  # well past the budget of a failing message
    for _ in range(tries):
        result = dispatcher.dispatch_due(now, transport=down)
        assert result.retried == 3 and result.failed == 0
        rows = _rows(db)
        assert {m.status for m in rows.values()} == {"pending"}
        assert all("cannot connect" in m.last_error for m in rows.values())
        nxt = rows["outage-0"].next_attempt_at
        delays.append(nxt - now)
        now = nxt
    assert delays[:5] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16)]
    assert delays[-1] == timedelta(hours=6)  # capped: an outage of days is retried every 6 hours
    assert now - T0 > timedelta(hours=12)

    up = transport_from_config({**app.config, **smtp_server.config()})
    assert dispatcher.dispatch_due(now, transport=up).sent == 3
    assert {m.status for m in _rows(db).values()} == {"sent"}
    assert sorted(m.envelope_rcpt[0] for m in smtp_server.messages) == [f"p{i}@example.com" for i in range(3)]
    assert dispatcher.dispatch_due(now + timedelta(days=1), transport=up).claimed == 0


def test_a_reachable_server_refusing_for_too_long_still_gives_up(db, app, smtp_server):
    """Only "cannot reach the server" waits forever; a server answering 4xx has a retry budget."""
    smtp_server.reject["busy@example.com"] = "451 4.3.0 Mailbox busy, try later"
    outbox.enqueue(template="test_notice", dedupe_key="busy", to_email="busy@example.com", now=T0)
    up = transport_from_config({**app.config, **smtp_server.config()})
    now = T0
    for _ in range(dispatcher.DEFAULT_MAX_ATTEMPTS):
        dispatcher.dispatch_due(now, transport=up)
        now += timedelta(hours=7)
    assert _rows(db)["busy"].status == "failed"


def test_backoff_unit_and_cap_are_configurable():
    cfg = {"OUTBOX_BACKOFF_BASE_SECONDS": 1, "OUTBOX_BACKOFF_CAP_SECONDS": 10}
    assert [dispatcher.backoff(a, cfg).total_seconds() for a in range(1, 6)] == [1, 2, 4, 8, 10]
    assert dispatcher.backoff(3).total_seconds() == 240  # default: minutes
