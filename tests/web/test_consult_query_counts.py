"""Query discipline of the public booking endpoint (issue #10): ``POST /api/v1/consultations`` books
in a fixed, small number of statements, and queues exactly the expected messages and audit events.

On PostgreSQL a booking is five statements: lock the facilitator's settings row and bump the slot
cache's version (one UPDATE ... RETURNING, with the facilitator), read the rules, overrides and busy
times under the lock (one UNION ALL), insert the consult (a guest record: no account is made or
joined until the email's owner confirms, issue #16), queue the four messages (one multi-row INSERT
... ON CONFLICT DO NOTHING) and write the audit event."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from retreat.consults import notices
from retreat.consults import slots as free_times
from retreat.messaging import outbox, sealed
from retreat.models import AuditEvent, Consultation, OutboxMessage, User
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import is_postgres
from tests.unit.test_consult_support import around_the_clock_facilitator
from tests.web.test_finance_query_counts import counting

BOOK = "/api/v1/consultations"
# What the test harness adds around a request (its session is a savepoint of the test's transaction).
_HARNESS = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)

PG_BOOKING = [
    "UPDATE consult_settings",  # lock + slots_version bump, RETURNING the settings and the facilitator
    "SELECT",  # weekly rules, date overrides and busy times under the lock (UNION ALL)
    "INSERT INTO consultations",
    "INSERT INTO outbox_messages",  # confirmation, two reminders, facilitator notice
    "SELECT",  # the webhook endpoints subscribed to consultation.booked (none here: nothing more written)
    "INSERT INTO audit_events",  # consult.booked
]
# SQLite (tests and development): no FOR UPDATE (BEGIN IMMEDIATE serialises writers), the version is
# bumped by the after-flush hook, and the outbox queues each message with its own savepoint.
SQLITE_MAX = 15


def _kind(statement: str) -> str:
    words = statement.split()
    if words[0].upper() in ("INSERT", "UPDATE", "DELETE"):
        table = words[2] if words[0].upper() == "INSERT" else words[1]
        return f"{words[0].upper()}{' INTO' if words[0].upper() == 'INSERT' else ''} {table}"
    return words[0].upper()


def _measure(client, fac, email) -> tuple[object, list[str]]:
    now = now_utc()
    start = free_times.next_free_slots(now + timedelta(hours=26), now, limit=1, facilitator_id=fac.id)[0].start
    with counting() as statements:
        r = client.post(BOOK, json={"start": start.isoformat(), "facilitator_id": fac.id, "name": "Grace Guest",
                                    "email": email, "timezone": "Europe/Berlin", "answers": {"pregnancy": "no"}})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r, [_kind(s) for s in statements if not _HARNESS.match(s)]


def test_booking_statement_count(client, db):
    fac = around_the_clock_facilitator()
    _measure(client, fac, "warm-up@example.com")  # the first request does one-time work
    r, kinds = _measure(client, fac, "new-guest@example.com")
    if is_postgres():
        assert kinds == PG_BOOKING
    else:
        assert len(kinds) <= SQLITE_MAX, kinds
    # A guest whose address has an account already: the same statements (the account is not read).
    factories.user("participant", email="known@example.com", password=None)
    db.session.commit()
    _, known = _measure(client, fac, "known@example.com")
    if is_postgres():
        assert known == PG_BOOKING
    else:
        assert len(known) <= SQLITE_MAX, known


def test_booking_queues_exactly_the_expected_messages_and_events(client, db):
    fac = around_the_clock_facilitator()
    r, _ = _measure(client, fac, "exact@example.com")
    consult = db.session.get(Consultation, r.get_json()["id"])
    assert db.session.scalar(select(User).where(User.email == "exact@example.com")) is None
    assert consult.participant_id is None  # a guest record until the email's owner confirms
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.group_key.like(f"consult:{consult.id}%"))
                              .order_by(OutboxMessage.dedupe_key)).all()
    prefix = f"consult-{consult.id}-s0"
    assert [(m.dedupe_key, m.template, m.recipient_email) for m in rows] == [
        (f"{prefix}-confirmation", "consult_confirmation", "exact@example.com"),
        (f"{prefix}-facilitator-booked", "consult_facilitator_notice", fac.email),
        (f"{prefix}-reminder-1h", "consult_reminder", "exact@example.com"),
        (f"{prefix}-reminder-24h", "consult_reminder", "exact@example.com"),
    ]
    by_key = {m.dedupe_key: m for m in rows}
    assert by_key[f"{prefix}-reminder-24h"].due_at == consult.start_at - timedelta(hours=24)
    assert by_key[f"{prefix}-reminder-1h"].due_at == consult.start_at - timedelta(hours=1)
    assert all(m.status == "pending" and m.recipient_user_id in (None, fac.id) for m in rows)
    assert sealed.context_of(by_key[f"{prefix}-confirmation"])["manage_url"] == r.get_json()["manage_url"]
    events = db.session.execute(select(AuditEvent.action, AuditEvent.object_type, AuditEvent.object_id)
                                .where(AuditEvent.action.in_(["user.created", "consult.booked"]))
                                .order_by(AuditEvent.id)).all()
    assert [tuple(e) for e in events] == [("consult.booked", "consultation", str(consult.id))]
    # Queuing the same messages again (a retry upstream) adds nothing: the dedupe keys hold.
    with outbox.batched():
        notices.queue_guest_messages(consult, "x", now=now_utc(), base_url="http://localhost", event="booked")
        notices.queue_facilitator_notice(consult, now=now_utc(), base_url="http://localhost", event="booked")
    db.session.flush()
    assert len(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.group_key.like(f"consult:{consult.id}%"))).all()) == 4


def _facilitators(n: int) -> None:
    for _ in range(n):
        around_the_clock_facilitator()
    from retreat.extensions import db as _db

    _db.session.commit()


def _page_statements(client) -> list[str]:
    client.get("/consult/")  # one-time work (the first request of a test client)
    with counting() as statements:
        r = client.get("/consult/?tz=Europe/Berlin")
    assert r.status_code == 200 and "time-slot" in r.get_data(as_text=True)
    return statements


def test_booking_page_statement_count_does_not_grow_with_facilitators(client, db):
    """``/consult/`` (the public booking page) costs the same statements with 1 and 20 facilitators:
    the bookable facilitators, their settings (one query for all), the free times (one UNION ALL),
    and the practice's crisis numbers (cached for 10 s outside tests, read every time in them)."""
    _facilitators(1)
    one = _page_statements(client)
    _facilitators(19)
    twenty = _page_statements(client)
    assert len(one) == len(twenty) <= 5, (one, twenty)
