"""When free times change, without asking the database on every slot list: PostgreSQL LISTEN/NOTIFY.

A statement-level trigger (``SLOTS_NOTIFY_DDL`` in ``retreat.consults.models``, migration 0023)
notifies channel ``retreat_slots`` whenever consult settings are written (every change to free
times bumps ``slots_version`` there: bookings, moves, cancellations, rules, overrides, settings) or
a user's role or active flag (column ``is_active``) changes. NOTIFY is transactional: it is delivered at commit, never for a
rolled-back transaction or savepoint.

Per app and process, a ``SlotChangeListener`` (a daemon thread with its own autocommit psycopg
connection, started lazily on the first slot list, so after gunicorn forks) counts notifications into
a generation. The slot cache's version is then (app, listener generation, local generation): no
query at all on a hit. The local generation moves as soon as this process itself writes free times
(at the flush, and again when the transaction commits or rolls back), so a process never waits for
its own notification.

Staleness, honestly: another process's change is seen once its notification has been read by this
process's listener thread (sub-millisecond on loopback; a few milliseconds when the worker's request
thread holds the GIL). If the listener's connection breaks, it stops vouching at once (the hit path
asks ``slots_versions`` again, as before) and reconnects with backoff under a new generation. A
silently dead connection (no reset, e.g. a network partition) is caught by the heartbeat: after
``ALIVE_SECONDS`` without a confirmed round trip the listener no longer vouches. In every case a
booking re-checks its time under the facilitator's lock and the exclusion constraint, so a stale
slot can only be refused, never double-booked.

Off (the query on every list, as before) on SQLite, or with ``SLOTS_NOTIFY=0``.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time

from flask import current_app, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from retreat.accounts.models import User
from retreat.consults.models import SLOTS_CHANGED, SLOTS_CHANNEL, ConsultSettings, mark_slots_changed

log = logging.getLogger("retreat.consults.slot_changes")

HEARTBEAT_SECONDS = 2.0  # a round trip at least this often while no notification arrives
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS + 1  # no confirmed round trip for this long: stop vouching
POLL_SECONDS = 0.25  # how soon the thread notices it is asked to stop
BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
EXTENSION = "slot_changes"


class SlotChangeListener:
    """``LISTEN channel`` on its own connection; ``generation()`` is the number of notifications (and
    reconnections) seen, or None while it is not listening (not yet, reconnecting, stopped)."""

    def __init__(self, conninfo: str, channel: str = SLOTS_CHANNEL, *, heartbeat: float = HEARTBEAT_SECONDS,
                 alive: float = ALIVE_SECONDS):
        self.conninfo, self.channel, self.heartbeat, self.alive = conninfo, channel, heartbeat, alive
        # (generation, listening, confirmed alive at): replaced whole, by the listener thread only, so a
        # reader sees one consistent state without a lock.
        self.state: tuple[int, bool, float] = (0, False, 0.0)
        self.backend_pid: int | None = None
        self.connects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def generation(self) -> int | None:
        gen, listening, alive_at = self.state
        if listening and time.monotonic() - alive_at < self.alive:
            return gen
        return None

    def start(self) -> SlotChangeListener:
        self._thread = threading.Thread(target=self._run, name=f"listen-{self.channel}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(POLL_SECONDS + 1 if timeout is None else timeout)

    def wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.generation() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.generation() is not None

    def _set(self, *, listening: bool) -> None:
        # Every change of connection starts a new generation: whatever was cached under the old one
        # may have missed a notification.
        self.state = (self.state[0] + 1, listening, time.monotonic() if listening else 0.0)

    def _run(self) -> None:
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5, keepalives=1,
                                     keepalives_idle=10, keepalives_interval=2, keepalives_count=3,
                                     application_name=f"retreat listen {self.channel}") as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.backend_pid = conn.info.backend_pid
                    self.connects += 1
                    self._set(listening=True)
                    failures = 0
                    while not self._stop.is_set():
                        for _note in conn.notifies(timeout=POLL_SECONDS):
                            self.state = (self.state[0] + 1, True, time.monotonic())
                        if time.monotonic() - self.state[2] >= self.heartbeat:
                            conn.execute("SELECT 1")  # a silently dead connection stops vouching
                            gen, listening, _ = self.state
                            self.state = (gen, listening, time.monotonic())
            except Exception as err:  # noqa: BLE001 - any failure: stop vouching, reconnect
                if self._stop.is_set():
                    break
                self._set(listening=False)
                self.backend_pid = None
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("slot change listener lost its connection (%s); again in %.2f s",
                            type(err).__name__, delay)
                self._stop.wait(delay)
        self.state = (self.state[0] + 1, False, 0.0)
        self.backend_pid = None


# --------------------------------------------------------------------------------------------
# Per app: the listener and this process's own generation
# --------------------------------------------------------------------------------------------

_tokens = itertools.count(1)
_all: list[SlotChanges] = []
_lock = threading.Lock()


class SlotChanges:
    def __init__(self, app):
        self.token = next(_tokens)  # apps in one process (tests) never share a version
        self._local = itertools.count(1)
        self.local = 0
        from retreat.extensions import db

        with app.app_context():
            url = db.engine.url
        self.enabled = bool(app.config.get("SLOTS_NOTIFY", True)) and url.get_backend_name() == "postgresql"
        self.conninfo = (url.set(drivername="postgresql").render_as_string(hide_password=False)
                         if self.enabled else "")
        self.listener: SlotChangeListener | None = None

    def bump(self) -> None:
        self.local = next(self._local)  # next() is atomic under the GIL

    def version(self):
        """(app, listener generation, local generation), or None when the listener cannot vouch."""
        listener = self.listener
        if listener is None:
            if not self.enabled:
                return None
            listener = self.start()
        gen = listener.generation()
        return None if gen is None else (self.token, gen, self.local)

    def start(self) -> SlotChangeListener:
        with _lock:
            if self.listener is None:
                self.listener = SlotChangeListener(self.conninfo).start()
            return self.listener

    def stop(self) -> None:
        listener, self.listener, self.enabled = self.listener, None, False
        if listener is not None:
            listener.stop()


def for_app(app) -> SlotChanges:
    state = app.extensions.get(EXTENSION)
    if state is None:
        with _lock:
            state = app.extensions.get(EXTENSION)
            if state is None:
                state = app.extensions[EXTENSION] = SlotChanges(app)
                _all.append(state)
    return state


def current_version():
    """The slot cache's version without a query, or None (then ask ``slots_versions``)."""
    return for_app(current_app).version()


def stop(app) -> None:
    state = app.extensions.get(EXTENSION)
    if state is not None:
        state.stop()


def _stop_all() -> None:
    for state in list(_all):
        if state.listener is not None:
            state.listener._stop.set()


atexit.register(_stop_all)


def _after_fork_in_child() -> None:
    # The parent's listener thread does not exist here and its connection is the parent's: keep the
    # object alive (closing it here would end the parent's session) and listen afresh when asked.
    for state in _all:
        if state.listener is not None:
            _inherited.append(state.listener)
            state.listener = None
        state.bump()


_inherited: list[SlotChangeListener] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------------------------
# This process's own writes: no wait for its own notification
# --------------------------------------------------------------------------------------------

_USER_FIELDS = ("role", "is_active_account")


def _bump_current_app() -> None:
    if has_app_context():
        state = current_app.extensions.get(EXTENSION)
        if state is not None:
            state.bump()


@event.listens_for(Session, "after_flush")
def _after_flush(session, flush_context) -> None:
    # Settings and the version bumps are marked by retreat.consults.models; who is a facilitator here.
    if not session.info.get(SLOTS_CHANGED):
        for obj in session.deleted:
            if isinstance(obj, User | ConsultSettings):
                mark_slots_changed(session)
                break
        else:
            for obj in session.dirty:
                if isinstance(obj, User):
                    attrs = inspect(obj).attrs
                    if any(attrs[f].history.has_changes() for f in _USER_FIELDS):
                        mark_slots_changed(session)
                        break
    if session.info.get(SLOTS_CHANGED):
        _bump_current_app()  # this session's own next list sees its flushed change


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session, transaction) -> None:
    # Committed (now visible to every new snapshot) or rolled back (a list computed from the flushed,
    # uncommitted change must not be served): either way, a new local generation.
    if session.info.get(SLOTS_CHANGED):
        _bump_current_app()
        if transaction.parent is None:
            del session.info[SLOTS_CHANGED]
