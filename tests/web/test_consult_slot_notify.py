"""The slot cache on PostgreSQL: a hit asks the database nothing; another app instance's booking
shows as soon as its notification arrives; a rollback announces nothing; a lost listener falls back
to the version query and comes back. Two ``create_app`` instances share the database (a web worker
each); each has its own listener and cache version."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import event, text

from retreat import create_app
from retreat.consults import booking as bookings
from retreat.consults import slot_changes
from retreat.consults import slots as free_times
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests.conftest import base_config, is_postgres
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not is_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's")]

SLOTS = "/api/v1/consultations/slots"
DEADLINE = 5.0


def _query(days: int = 3) -> dict:
    today = now_utc().date()
    return {"start": (today + timedelta(days=1)).isoformat(), "end": (today + timedelta(days=days)).isoformat(),
            "tz": "UTC"}


class Counted:
    """Statements run and connections checked out by one app's engine (a hit must do neither)."""

    def __init__(self, app):
        self.app, self.statements, self.checkouts = app, 0, 0
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine.pool, "checkout", self._checkout)

    def _statement(self, *args, **kw):
        self.statements += 1

    def _checkout(self, *args, **kw):
        self.checkouts += 1

    def slots(self) -> tuple[list[str], int, int]:
        s0, c0 = self.statements, self.checkouts
        r = self.app.test_client().get(SLOTS, query_string=_query())
        assert r.status_code == 200
        return [s["start"] for s in r.get_json()["slots"]], self.statements - s0, self.checkouts - c0


def _listener(app) -> slot_changes.SlotChangeListener:
    listener = slot_changes.for_app(app).listener
    assert listener is not None and listener.wait_listening(DEADLINE)
    return listener


def _until(predicate, timeout: float = DEADLINE) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "deadline passed"
        time.sleep(0.001)
    return time.monotonic() - started


def _book(app, start: str, email: str) -> None:
    r = app.test_client().post("/api/v1/consultations", json={"start": start, "name": "Grace Guest", "email": email,
                                                              "timezone": "UTC", "answers": {}})
    assert r.status_code == 201, r.get_json()


@contextmanager
def _raw():
    with db.engine.connect() as conn:  # any app context
        conn.commit()
        yield conn


@pytest.fixture()
def pair(committing_app):
    """(A, B): two instances of the app on the same database; B's cache is warm and listening."""
    a, b = committing_app, create_app(base_config())
    with a.app_context():
        around_the_clock_facilitator()
    free_times.clear_slot_cache()
    counted = Counted(b)
    counted.slots()  # first list in B: starts B's listener (this one still asked the database)
    _listener(b)
    try:
        yield a, b, counted
    finally:
        slot_changes.stop(a)
        slot_changes.stop(b)
        with b.app_context():
            db.engine.dispose()


def test_a_warm_hit_runs_no_statement_and_opens_no_transaction(pair):
    _a, b, counted = pair
    miss, statements, _ = counted.slots()  # a miss under the listener's version: computed
    assert miss and statements >= 1
    for _ in range(3):
        hit, statements, checkouts = counted.slots()
        assert (hit, statements, checkouts) == (miss, 0, 0)


def test_another_instance_s_booking_shows_once_its_notification_arrives(pair):
    a, b, counted = pair
    before, _, _ = counted.slots()
    assert counted.slots()[1] == 0  # cached in B
    listener = _listener(b)
    gen = listener.generation()
    wanted = before[5]
    _book(a, wanted, "a@example.com")  # A commits; B has run nothing since
    waited = _until(lambda: listener.generation() != gen)
    print(f"\nnotification seen by B {waited * 1000:.2f} ms after A's commit returned")
    after, statements, _ = counted.slots()  # at once: the generation moved
    assert wanted not in after and len(after) < len(before) and statements >= 1
    assert counted.slots()[1] == 0  # and cached again


def test_a_rolled_back_booking_announces_nothing(pair):
    a, b, counted = pair
    before, _, _ = counted.slots()
    listener = _listener(b)
    gen = listener.generation()
    with a.app_context():
        start = free_times.next_free_slots(now_utc() + timedelta(days=1), now_utc(), limit=1)[0].start
        bookings.book(start=start, facilitator_id=None, name="Grace Guest", email="g@example.com", phone=None,
                      tz="UTC", base_url=BASE_URL, now=now_utc(), answers={})
        db.session.flush()
        db.session.rollback()
        # A sentinel committed afterwards: once B has seen it, anything the rollback sent would have
        # arrived before it (notifications arrive in commit order).
        with _raw() as conn:
            conn.execute(text("NOTIFY retreat_slots, 'sentinel'"))
            conn.commit()
    _until(lambda: listener.generation() != gen)
    time.sleep(0.05)
    assert listener.generation() == gen + 1  # the sentinel only
    assert counted.slots()[0] == before


def test_a_facilitator_deactivated_by_plain_sql_disappears(pair):
    a, b, counted = pair
    assert counted.slots()[0]
    listener = _listener(b)
    gen = listener.generation()
    with a.app_context(), _raw() as conn:
        conn.execute(text("UPDATE users SET is_active = false WHERE role = 'facilitator'"))
        conn.commit()
    _until(lambda: listener.generation() != gen)
    assert counted.slots()[0] == []


def test_a_killed_listener_falls_back_to_the_query_then_listens_again(pair, monkeypatch):
    a, b, counted = pair
    monkeypatch.setattr(slot_changes, "BACKOFF_SECONDS", (0.3,))  # long enough to see the fallback
    before, _, _ = counted.slots()
    listener = _listener(b)
    pid = listener.backend_pid
    with a.app_context(), _raw() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    _until(lambda: listener.generation() is None)
    with b.app_context():
        assert isinstance(free_times.slots_cache_version(), tuple) and slot_changes.current_version() is None
    _book(a, before[2], "down@example.com")  # while B's listener is away
    during, statements, _ = counted.slots()
    assert before[2] not in during and statements >= 1  # the version query, as before the listener
    assert counted.slots()[1] >= 1  # every list asks while the listener cannot vouch
    _until(lambda: listener.generation() is not None)
    assert listener.backend_pid not in (None, pid) and listener.connects == 2
    counted.slots()
    assert counted.slots()[1] == 0  # listening again: hits ask nothing
    gen = listener.generation()
    _book(a, during[2], "up@example.com")
    _until(lambda: listener.generation() != gen)
    assert during[2] not in counted.slots()[0]


def test_the_writing_process_sees_its_own_change_without_its_notification(app, client, db):
    """In the ``db`` fixture nothing really commits, so no notification ever arrives: a fresh list
    after a booking can only come from this process's own after-commit bump."""
    around_the_clock_facilitator()
    free_times.clear_slot_cache()
    counted = Counted(app)
    counted.slots()
    listener = _listener(app)
    before, _, _ = counted.slots()
    assert counted.slots()[1] == 0
    gen = listener.generation()
    _book(app, before[1], "self@example.com")
    after, statements, _ = counted.slots()
    assert before[1] not in after and statements >= 1 and listener.generation() == gen


def test_slots_notify_off_keeps_the_query(committing_app):
    app = create_app(base_config(SLOTS_NOTIFY=False))
    with app.app_context():
        around_the_clock_facilitator()
    counted = Counted(app)
    counted.slots()
    assert counted.slots()[1] >= 1 and slot_changes.for_app(app).listener is None
    slot_changes.stop(app)
    with app.app_context():
        db.engine.dispose()


def test_a_listener_that_cannot_connect_never_vouches():
    listener = slot_changes.SlotChangeListener("postgresql://postgres@127.0.0.1:1/nothing").start()
    try:
        time.sleep(0.1)
        assert listener.generation() is None
    finally:
        listener.stop()
    assert not listener._thread.is_alive()


def test_the_listener_stops_cleanly():
    url = psycopg.conninfo.make_conninfo(base_config()["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""))
    listener = slot_changes.SlotChangeListener(url).start()
    assert listener.wait_listening(DEADLINE)
    listener.stop()
    assert not listener._thread.is_alive() and listener.generation() is None
