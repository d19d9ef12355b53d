"""With the database unreachable every request gets a calm 503 (HTML for people, JSON for programs,
``Retry-After`` for both), never a 500; after its connections are cut the app reconnects by itself.

The app here points at a closed loopback port: no ``db``/``client`` fixture, those bind the session
to the working test database. ``bench/faults.py pg-restart`` checks the same with a real restart.
"""

from __future__ import annotations

import socket

import pytest

from retreat import create_app
from retreat.payments import gateway
from tests.conftest import TEST_DATABASE_URL, base_config, is_postgres


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


@pytest.fixture()
def down_app():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/retreat"
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=url,
                                 SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}}))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.testing = False  # the production error path, not the test re-raise
    return app


@pytest.mark.parametrize("path", ["/retreats", "/cohorts/1", "/consult/"])
def test_pages_say_temporarily_unavailable(down_app, path):
    r = down_app.test_client().get(path)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    page = r.get_data(as_text=True)
    assert "Temporarily unavailable" in page and "cannot reach our database" in page
    assert "Reference:" in page  # the request id, to quote to support


@pytest.mark.parametrize("path", ["/me/", "/", "/retreats", "/account/settings"])
def test_signed_in_people_get_the_calm_page_too(down_app, path):
    """A signed-in browser's session cookie: the app must load its server session, and cannot."""
    from tests.conftest import put_session_cookie

    client = down_app.test_client()
    put_session_cookie(down_app, client, "a-server-session-id")
    r = client.get(path)
    assert r.status_code == 503, r.status_code  # was a bare 500: the error page's layout loads the user
    page = r.get_data(as_text=True)
    assert "Temporarily unavailable" in page and "Reference:" in page


def test_form_post_is_503_not_500(down_app):
    r = down_app.test_client().post("/account/login", data={"email": "a@example.com", "password": "x" * 12})
    assert r.status_code == 503


@pytest.mark.parametrize("path,headers", [
    ("/api/v1/cohorts", {}),
    ("/api/v1/cohorts/1", {}),
    ("/api/v1/me", {"Authorization": "Bearer not-checked-the-database-is-down"}),
])
def test_api_answers_json_503(down_app, path, headers):
    r = down_app.test_client().get(path, headers=headers)
    assert r.status_code == 503 and r.is_json
    assert r.get_json() == {"error": "We cannot reach our database right now. Please try again shortly."}
    assert r.headers["Retry-After"] == "5"


def test_signed_stripe_webhook_gets_json_503_so_stripe_retries(down_app):
    payload = gateway.event_payload("evt_down_1", "customer.updated", {"id": "cus_1"})
    sig = gateway.signature_header(payload, down_app.config["STRIPE_WEBHOOK_SECRET"])
    r = down_app.test_client().post("/webhooks/stripe", data=payload,
                                    headers={"Stripe-Signature": sig, "Content-Type": "application/json"})
    assert r.status_code == 503 and r.is_json
    # a forged one is still refused before the database is needed
    bad = down_app.test_client().post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=00"})
    assert bad.status_code == 400


def test_pool_exhaustion_is_503():
    """No free connection within pool_timeout is "busy, try again", not a bug."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from retreat.web.errors import database_unavailable

    assert database_unavailable(PoolTimeout("QueuePool limit of size 10 overflow 10 reached"))
    assert not database_unavailable(ValueError("a bug"))


@pytest.mark.skipif(not is_postgres(), reason="cuts real PostgreSQL connections")
def test_app_reconnects_after_its_connections_are_killed():
    """A database restart kills every pooled connection; each is found dead at checkout (its socket
    says so, retreat.core.db_liveness) and replaced, so no request fails. The kill waits until the
    backend is gone, as after a restart."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"retreat-reconnect-{uuid.uuid4().hex[:8]}"
    app = create_app(base_config(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"application_name": name}}))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # a connection now sits in the pool
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        killed = c.execute(text("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                                "WHERE application_name = :n"), {"n": name}).scalar()
    admin.dispose()
    assert killed >= 1
    for _ in range(3):
        r = client.get("/healthz")
        assert r.status_code == 200, r.get_data(as_text=True)
    with app.app_context():
        from retreat.extensions import db

        db.engine.dispose()


@pytest.mark.skipif(not is_postgres(), reason="cuts real PostgreSQL connections")
def test_connection_dropped_after_the_response_is_ready_still_answers():
    """A crash between the view and the end of the request (session close) must not turn a
    rendered page into a server error."""
    import uuid

    from flask import request_finished
    from sqlalchemy import create_engine, text

    name = f"retreat-teardown-{uuid.uuid4().hex[:8]}"
    app = create_app(base_config(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"application_name": name}}))
    app.testing = False
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")

    def crash(sender, response, **extra):
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                      {"n": name})

    client = app.test_client()
    with request_finished.connected_to(crash, app):
        r = client.get("/retreats")  # the view read the database: a transaction is open at teardown
    assert r.status_code == 200 and "Retreats" in r.get_data(as_text=True)
    assert client.get("/retreats").status_code == 200  # and the next request gets a fresh connection
    admin.dispose()
    with app.app_context():
        from retreat.extensions import db

        db.engine.dispose()


@pytest.mark.skipif(not is_postgres(), reason="cuts real PostgreSQL connections")
def test_a_connection_is_pinged_only_when_it_may_be_dead():
    """No round trip for a connection just used; one for a killed backend or a long idle."""
    import time
    import uuid

    from sqlalchemy import create_engine, text

    from retreat.core import db_liveness

    name = f"retreat-liveness-{uuid.uuid4().hex[:8]}"
    engine = create_engine(TEST_DATABASE_URL, connect_args={"application_name": name})
    db_liveness.install(engine, idle_seconds=0.5)
    verdicts = []
    original = db_liveness._may_be_dead

    def spy(*args):
        verdicts.append(original(*args))
        return verdicts[-1]

    db_liveness._may_be_dead = spy
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            first_pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as c:
            assert c.execute(text("SELECT pg_backend_pid()")).scalar() == first_pid
        assert verdicts[-1] is False  # just checked in: used as is
        with admin.connect() as a:
            assert a.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": first_pid}).scalar()
        with engine.connect() as c:  # the dead one is noticed and replaced: no error here
            second_pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        assert verdicts[-1] is True and second_pid != first_pid
        time.sleep(0.6)
        with engine.connect() as c:
            assert c.execute(text("SELECT pg_backend_pid()")).scalar() == second_pid  # pinged, alive
        assert verdicts[-1] is True
    finally:
        db_liveness._may_be_dead = original
        admin.dispose()
        engine.dispose()
