"""`flask messages list / retry / dispatch`."""

from __future__ import annotations

from retreat.messaging import outbox
from retreat.models import AuditEvent, OutboxMessage


def test_list_retry_and_dispatch_from_the_command_line(app, db):
    m = outbox.enqueue(template="test_notice", dedupe_key="cli-1", to_email="cli@example.com")
    m.status, m.attempts, m.last_error = "failed", 6, "gave up after 6 attempts: 451 busy"
    db.session.commit()
    runner = app.test_cli_runner()

    out = runner.invoke(args=["messages", "list", "--status", "failed"]).output
    assert "failed: 1" in out and "cli@example.com" in out and "451 busy" in out

    res = runner.invoke(args=["messages", "retry", "--all-failed"])
    assert res.exit_code == 0 and "1 message(s) queued again." in res.output
    db.session.expire_all()
    row = db.session.query(OutboxMessage).filter_by(dedupe_key="cli-1").one()
    assert row.status == "pending" and row.attempts == 0
    assert db.session.query(AuditEvent).filter_by(action="messages.retry", actor_email="cli").count() == 1

    res = runner.invoke(args=["messages", "dispatch", "--now", "2099-01-01T12:00:00+00:00"])
    assert res.exit_code == 0 and "sent 1" in res.output
    assert runner.invoke(args=["messages", "dispatch", "--now", "yesterday"]).exit_code == 2
    assert runner.invoke(args=["messages", "retry"]).exit_code == 2
