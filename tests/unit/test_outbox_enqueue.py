from datetime import UTC, datetime, timedelta

import pytest

from retreat.core.errors import ValidationFailed
from retreat.messaging import outbox
from retreat.models import OutboxMessage, OutboxStatus
from tests import factories
from tests.conftest import is_postgres

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_enqueue_is_idempotent_per_dedupe_key(db):
    u = factories.user()
    a = outbox.enqueue(template="welcome", dedupe_key="welcome-1", to_user=u, now=NOW)
    b = outbox.enqueue(template="other", dedupe_key="welcome-1", to_user=u, now=NOW)
    assert a.id == b.id and b.template == "welcome"
    assert db.session.query(OutboxMessage).count() == 1
    assert a.recipient_tz == u.tz and a.due_at == NOW


def test_cancel_group_cancels_only_pending(db):
    u = factories.user()
    m1 = outbox.enqueue(template="r", dedupe_key="c1-24h", group_key="consult:1", to_user=u,
                        due_at=NOW + timedelta(hours=1), now=NOW)
    m2 = outbox.enqueue(template="r", dedupe_key="c1-1h", group_key="consult:1", to_user=u, now=NOW)
    m2.status = OutboxStatus.SENT.value
    other = outbox.enqueue(template="r", dedupe_key="c2-1h", group_key="consult:2", to_user=u, now=NOW)
    db.session.flush()
    assert outbox.cancel(group_key="consult:1", now=NOW) == 1
    db.session.refresh(m1)
    db.session.refresh(other)
    assert m1.status == "cancelled" and m2.status == "sent" and other.status == "pending"


def test_reschedule_moves_pending_message(db):
    u = factories.user()
    outbox.enqueue(template="r", dedupe_key="k", to_user=u, due_at=NOW, now=NOW)
    moved = outbox.reschedule("k", NOW + timedelta(days=1), now=NOW)
    assert moved.due_at == NOW + timedelta(days=1) == moved.next_attempt_at


def test_context_refuses_clinical_data(db):
    with pytest.raises(ValidationFailed):
        outbox.enqueue(template="r", dedupe_key="x", to_email="a@example.com", context={"phq9": 20})


def test_enqueued_message_is_a_live_row(db):
    """The queued message (PostgreSQL: written with INSERT ... ON CONFLICT DO NOTHING) is the row
    itself: changing it is saved, and queueing the key again returns it unchanged."""
    u = factories.user()
    msg = outbox.enqueue(template="welcome", dedupe_key="live-1", to_user=u, context={"n": 1}, now=NOW)
    assert msg.id and msg.status == "pending" and msg.sent_at is None and msg.context == {"n": 1}
    msg.status = OutboxStatus.SENT.value
    db.session.flush()
    db.session.expire_all()
    again = outbox.enqueue(template="other", dedupe_key="live-1", to_user=u, now=NOW)
    assert again.id == msg.id and again.status == "sent" and again.template == "welcome"
    assert db.session.query(OutboxMessage).filter_by(dedupe_key="live-1").count() == 1


def test_batched_messages_are_written_together_once_per_key(db):
    u = factories.user()
    with outbox.batched():
        outbox.enqueue(template="a", dedupe_key="batch-1", to_user=u, now=NOW)
        outbox.enqueue(template="b", dedupe_key="batch-2", to_user=u, due_at=NOW + timedelta(days=1), now=NOW)
        outbox.enqueue(template="again", dedupe_key="batch-1", to_user=u, now=NOW)
    rows = {m.dedupe_key: m for m in db.session.query(OutboxMessage).filter(OutboxMessage.dedupe_key.like("batch-%"))}
    assert set(rows) == {"batch-1", "batch-2"} and rows["batch-1"].template == "a"
    assert rows["batch-2"].due_at == NOW + timedelta(days=1) and rows["batch-2"].status == "pending"


@pytest.mark.skipif(not is_postgres(), reason="elsewhere enqueue writes at once (the caller's rollback undoes it)")
def test_a_failed_batch_writes_nothing(db):
    u = factories.user()
    with pytest.raises(RuntimeError), outbox.batched():
        outbox.enqueue(template="a", dedupe_key="lost-1", to_user=u, now=NOW)
        raise RuntimeError("the booking failed")
    assert db.session.query(OutboxMessage).filter_by(dedupe_key="lost-1").count() == 0
