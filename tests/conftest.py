"""Test fixtures.

Database: PostgreSQL when TEST_DATABASE_URL is set (CI), otherwise a SQLite file in a temp dir.
Each test runs inside one outer transaction that is rolled back at the end; the app's own
commits become savepoints. Concurrency tests use the ``committing_app`` fixture instead, which
commits for real and truncates afterwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from flask import g, request_started
from flask_sqlalchemy.session import Session as FlaskSQLAlchemySession
from sqlalchemy import text

from retreat import create_app
from retreat.extensions import db as _db
from tests import factories

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
_TMP = Path(tempfile.mkdtemp(prefix="retreat-tests-"))


def pytest_configure(config):
    if REQUIRE_POSTGRES and not TEST_DATABASE_URL.startswith("postgresql"):
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not a PostgreSQL URL")


def is_postgres() -> bool:
    return TEST_DATABASE_URL.startswith("postgresql")


def base_config(**extra) -> dict:
    cfg = {
        "TESTING": True,
        "ENV_NAME": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "SECRET_KEY_GENERATED": False,
        "SQLALCHEMY_DATABASE_URI": TEST_DATABASE_URL or f"sqlite:///{_TMP / 'test.sqlite3'}",
        "INSTANCE_DIR": str(_TMP / "instance"),
        "MAIL_OUTBOX_DIR": str(_TMP / "instance" / "outbox"),
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SERVER_NAME": None,
        "BASE_URL": "http://localhost",
        "WEBHOOK_ALLOW_PRIVATE_URLS": True,  # the receivers are on loopback
        "CLINICAL_DATA_KEYS": "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E=",
    }
    cfg.update(extra)
    return cfg


def fresh_schema() -> None:
    """Drop and create every table of the app context's database (btree_gist first on PostgreSQL)."""
    if is_postgres():
        with _db.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
    _db.drop_all()
    _db.create_all()


@pytest.fixture(scope="session")
def app():
    app = create_app(base_config())
    with app.app_context():
        fresh_schema()
    yield app


class _ConnectionBoundSession(FlaskSQLAlchemySession):
    """Flask-SQLAlchemy's session picks engines itself; in tests it must use the test connection."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if self.bind is not None:
            return self.bind
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def _fresh_g(sender, **_extra):
    g.__dict__.clear()
    # A request never inherits a transaction in production: what the test wrote before it is
    # committed (a savepoint here), so that the request's commit or rollback decides its own work only.
    from retreat.web.transaction import commit_keeping_rows

    commit_keeping_rows()


@pytest.fixture()
def db(app):
    """One outer transaction per test, rolled back at the end.

    The test keeps one app context pushed, which requests reuse; each request starts with an
    empty ``flask.g`` and with the test's own writes committed, as in production (Flask-Login's
    cached user, API user, no-store flag; a transaction of its own).
    """
    ctx = app.app_context()
    ctx.push()
    request_started.connect(_fresh_g, app)
    conn = _db.engine.connect()
    outer = conn.begin()
    original = _db.session
    _db.session = _db._make_scoped_session(
        {"bind": conn, "join_transaction_mode": "create_savepoint", "class_": _ConnectionBoundSession}
    )
    try:
        yield _db
    finally:
        _db.session.remove()
        _db.session = original
        outer.rollback()
        conn.close()
        request_started.disconnect(_fresh_g, app)
        ctx.pop()


@pytest.fixture()
def client(app, db):
    return app.test_client()


def login_as(app, client, user, *, remember: bool = False):
    """Sign ``user`` in on ``client`` the way a real login would: a server session opens and the
    cookie carries its id. Returns the server session (``UserSession``).

    Flask-Login's session identifier is recorded as a real login's would have been (the app does
    not bind sessions to it: ``session_protection`` is off, see retreat/__init__.py).
    """
    from retreat.accounts import sessions as server_sessions

    row, raw = server_sessions.open_session(user, remember=remember, ip=client.environ_base.get("REMOTE_ADDR"),
                                            user_agent=client.environ_base.get("HTTP_USER_AGENT"))
    put_session_cookie(app, client, raw)
    return row


def put_session_cookie(app, client, raw: str) -> None:
    """Give ``client`` a signed session cookie naming the server session ``raw`` (no database)."""
    from flask_login.utils import _create_identifier

    with app.test_request_context(environ_base=dict(client.environ_base)):
        ident = _create_identifier()
    with client.session_transaction() as sess:
        sess.clear()
        sess["_user_id"] = raw
        sess["_fresh"] = True
        sess["_id"] = ident


def signed_in(app, user=None):
    """A new test client, signed in as ``user`` (anonymous when None); ``client.user`` is set.

    Each request starts with an empty ``flask.g`` (see the ``db`` fixture), so a client never
    inherits the user another client's request cached there.
    """
    client = app.test_client()
    client.user = user
    if user is not None:
        login_as(app, client, user)
    return client


@pytest.fixture()
def make_client(app, db):
    """make_client(role or user) -> a test client signed in as a new user of that role."""

    def _make(who="participant", **kw):
        user = who if not isinstance(who, str) else factories.user(role=who, **kw)
        db.session.commit()  # a savepoint in tests: survives a view's rollback after a refused change
        c = app.test_client()
        login_as(app, c, user)
        c.user = user
        return c

    return _make


@pytest.fixture()
def committing_app(app):
    """An app whose sessions really commit (for threads and processes); tables truncated after."""
    app = create_app(base_config())
    yield app
    with app.app_context():
        _db.session.remove()
        names = [t.name for t in reversed(_db.metadata.sorted_tables)]
        if is_postgres():
            with _db.engine.begin() as conn:
                conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"))
        else:
            with _db.engine.begin() as conn:
                conn.execute(text("PRAGMA foreign_keys=OFF"))
                for n in names:
                    conn.execute(text(f'DELETE FROM "{n}"'))
        _db.engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing(app):
    """Argon2id with minimal cost in tests (honoured only when app.testing): same code paths, fast suite."""
    app.config["PASSWORD_HASHER"] = "cheapest"


# Payments: the session-scoped localstripe server and an app pointed at it (tests/localstripe.py).
from tests.localstripe import localstripe, stripe_app  # noqa: E402,F401
from tests.stripe_proxy import proxy_app, stripe_proxy  # noqa: E402,F401


class _SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it accepts.

    ``messages``: parsed ``email.message.EmailMessage`` objects in arrival order (each has
    ``.envelope_rcpt``). ``reject[address] = "550 5.1.1 No such user"`` refuses a recipient
    (4xx codes are temporary); ``delay`` (seconds) makes every DATA reply slow. A message counts
    as received only once the server has answered 250 to its DATA.
    """

    def __init__(self):
        import socket
        import threading

        from aiosmtpd.controller import Controller

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = "127.0.0.1"
        self._raw: list[tuple[bytes, list[str]]] = []
        self._parsed: list = []
        self.reject: dict[str, str] = {}
        self.delay = 0.0
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname=self.host, port=self.port)

    # aiosmtpd handler hooks ----------------------------------------------------------------
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.reject.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self._raw.append((envelope.content, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list:
        from email import message_from_bytes, policy

        with self._lock:
            raw = self._raw[len(self._parsed):]
        for content, rcpts in raw:  # parsed on first look (keeps the server thread fast)
            msg = message_from_bytes(content, policy=policy.default)
            msg.envelope_rcpt = rcpts
            self._parsed.append(msg)
        return list(self._parsed)

    # helpers -------------------------------------------------------------------------------
    def config(self) -> dict:
        """App config overrides that send through this server."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": self.port, "SMTP_STARTTLS": False,
                "SMTP_USERNAME": "", "SMTP_TIMEOUT": 10}

    def env(self) -> dict:
        """The same, as environment variables for a subprocess."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_STARTTLS": "0", "SMTP_TIMEOUT": "10"}

    def count(self) -> int:
        with self._lock:
            return len(self._raw)

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.01)
        return self.count() >= n

    def clear(self) -> None:
        with self._lock:
            self._raw.clear()
            self._parsed.clear()
        self.reject.clear()
        self.delay = 0.0


@pytest.fixture()
def smtp_server():
    """A real SMTP server on 127.0.0.1 (a concrete free port) collecting messages; see ``_SmtpSink``."""
    sink = _SmtpSink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()
