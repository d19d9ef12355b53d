"""Capability links in the outbox are sealed (retreat.messaging.sealed): never in the plain context,
in every email sent for the message (retries and duplicate sends included), cleared once sent."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from retreat.core.crypto import decrypt_field
from retreat.messaging import dispatcher, outbox, sealed
from retreat.messaging.transport import transport_from_config
from retreat.models import OutboxMessage
from retreat.privacy import key_rotation
from tests import factories

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
LINK = "http://localhost/account/reset-password/rt_SEALED-capability-token-42"


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def _queue(user, key="reset-1"):
    return outbox.enqueue(template="password_reset", dedupe_key=key, to_user=user, now=NOW,
                          context={"name": user.name, "expires_minutes": 60, "forgot_url": "http://localhost/f"},
                          private={"reset_url": LINK})


def _raw_row(db, key):
    return db.session.execute(text("SELECT * FROM outbox_messages WHERE dedupe_key = :k"), {"k": key}).mappings().one()


def _texts(smtp):
    return [m.get_body(("plain",)).get_content() for m in smtp.messages]


def test_a_link_is_sealed_at_rest_sent_in_the_email_and_cleared_once_sent(db, smtp):
    user = factories.user(email="rae@example.com", name="Rae")
    msg = _queue(user)
    db.session.flush()
    raw = _raw_row(db, "reset-1")
    assert "rt_SEALED" not in str(dict(raw)) and raw["private_enc"]
    assert "reset_url" not in msg.context and sealed.context_of(msg)["reset_url"] == LINK
    assert (OutboxMessage, "private_enc") in key_rotation.ENCRYPTED_COLUMNS
    assert key_rotation.rotate_keys()["outbox_messages.private_enc"] == 1
    db.session.expire_all()
    assert dispatcher.dispatch_due(NOW, transport=smtp.transport).sent == 1
    assert LINK in _texts(smtp)[0]
    db.session.expire_all()
    assert _raw_row(db, "reset-1")["private_enc"] is None and _raw_row(db, "reset-1")["status"] == "sent"


def test_a_failed_message_keeps_its_link_for_the_operators_retry(db, smtp):
    user = factories.user(email="rae@example.com", name="Rae")
    msg = _queue(user)
    smtp.reject["rae@example.com"] = "550 5.1.1 No such user"
    assert dispatcher.dispatch_due(NOW, transport=smtp.transport).failed == 1
    db.session.expire_all()
    assert _raw_row(db, "reset-1")["status"] == "failed" and _raw_row(db, "reset-1")["private_enc"]
    smtp.reject.clear()
    outbox.retry(msg.id, actor=None, now=NOW)
    assert dispatcher.dispatch_due(NOW, transport=smtp.transport).sent == 1
    assert LINK in _texts(smtp)[-1]


def test_a_duplicate_send_after_a_lost_lease_carries_the_same_working_link(db, smtp, app):
    user = factories.user(email="rae@example.com", name="Rae")
    _queue(user)
    db.session.commit()
    lease, result = timedelta(seconds=60), dispatcher.DispatchResult()
    claim = dict(batch_size=10, lease=lease, max_attempts=6, result=result)
    (first,), _ = dispatcher.claim_batch(NOW, worker="a", **claim)  # a slow dispatcher...
    later = NOW + lease + timedelta(seconds=1)
    (second,), _ = dispatcher.claim_batch(later, worker="b", **claim)  # ...loses its lease to another
    with smtp.transport.open() as conn:
        dispatcher._send_one(conn, second, later, app.config, "b", 6, result)  # marks it sent: links cleared
        dispatcher._send_one(conn, first, NOW, app.config, "a", 6, result)  # the duplicate, from its snapshot
    assert smtp.count() == 2 and all(LINK in body for body in _texts(smtp))
    db.session.expire_all()
    assert _raw_row(db, "reset-1")["private_enc"] is None


def test_cancelled_messages_drop_their_links(db):
    user = factories.user(email="rae@example.com", name="Rae")
    _queue(user, key="reset-a")
    outbox.enqueue(template="password_reset", dedupe_key="reset-b", to_user=user, group_key="g", now=NOW,
                   context={"name": "Rae"}, private={"reset_url": LINK})
    outbox.cancel(group_key="g", now=NOW)
    outbox.cancel_message(_queue(user, key="reset-a").id, actor=None, now=NOW)
    db.session.flush()
    assert _raw_row(db, "reset-a")["private_enc"] is None and _raw_row(db, "reset-b")["private_enc"] is None


def _migration():
    path = next(Path("migrations/versions").glob("*_secrets01_*.py"))
    spec = importlib.util.spec_from_file_location("secrets01", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_migration_seals_unsent_links_and_strips_sent_ones(db):
    user = factories.user(email="rae@example.com", name="Rae")
    manage = "http://localhost/consult/manage/OLD-MANAGE-TOKEN"
    ics = {"uid": "c@retreat", "description": f"Free consultation.\nReschedule or cancel: {manage}"}
    for key, status in (("old-pending", "pending"), ("old-sent", "sent")):
        outbox.enqueue(template="consult_confirmation", dedupe_key=key, to_user=user, ics=ics, now=NOW,
                       context={"manage_url": manage, "guest_name": "Rae"})
        db.session.flush()
        db.session.execute(text("UPDATE outbox_messages SET status = :s WHERE dedupe_key = :k"),
                           {"s": status, "k": key})
    migration = _migration()
    migration._seal_outbox_links(db.session.connection())
    db.session.expire_all()
    pending, sent = (db.session.query(OutboxMessage).filter_by(dedupe_key=k).one() for k in ("old-pending", "old-sent"))
    for row in (pending, sent):
        assert "OLD-MANAGE" not in str(_raw_row(db, row.dedupe_key)) and row.context["guest_name"] == "Rae"
    assert sent.private_enc is None
    assert sealed.context_of(pending)["manage_url"] == manage and manage in sealed.ics_of(pending)["description"]
    migration._unseal_outbox_links(db.session.connection())  # the downgrade puts them back
    db.session.expire_all()
    assert db.session.query(OutboxMessage).filter_by(dedupe_key="old-pending").one().context["manage_url"] == manage


def test_the_data_migration_encrypts_plain_fields_and_the_downgrade_decrypts_them(db):
    migration = _migration()
    conn = db.session.connection()
    conn.execute(text("CREATE TEMP TABLE demo_fields (id INTEGER PRIMARY KEY, answer TEXT, answer_enc TEXT)"))
    conn.execute(text("INSERT INTO demo_fields (id, answer) VALUES (1, 'peanut allergy'), (2, '')"))
    migration._move(conn, "demo_fields", "answer", "answer_enc", migration.encrypt)
    rows = dict(conn.execute(text("SELECT id, answer_enc FROM demo_fields")).all())
    assert rows[2] is None and "peanut" not in rows[1] and decrypt_field(rows[1]) == "peanut allergy"
    conn.execute(text("UPDATE demo_fields SET answer = NULL"))
    migration._move(conn, "demo_fields", "answer_enc", "answer", migration.decrypt)
    assert conn.execute(text("SELECT answer FROM demo_fields WHERE id = 1")).scalar() == "peanut allergy"
