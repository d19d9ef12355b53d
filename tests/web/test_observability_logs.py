"""Logs (issue #22 item 6): INFO lines reach the configured handler, JSON lines parse and carry the
request id of the response (the access log line too), an unhandled error is logged exactly once,
and X-Request-ID is believed only from the trusted proxy (audit rows carry the id used)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from sqlalchemy import select

from retreat import create_app
from retreat.audit.models import AuditEvent
from retreat.core import logs
from tests.conftest import base_config


@pytest.fixture()
def json_app():
    app = create_app(base_config(LOG_FORMAT="json", LOG_LEVEL="INFO"))
    app.add_url_rule("/_probe/boom", "probe_boom", lambda: 1 / 0)
    app.add_url_rule("/_probe/info", "probe_info", lambda: logging.getLogger("retreat.probe").info("hello") or "ok")
    return app


@pytest.fixture()
def lines():
    """What the app's own root handler writes, one parsed JSON object per line."""
    handler = logs.own_handler()
    assert handler is not None, "create_app installs the root handler"
    stream = io.StringIO()
    previous = handler.setStream(stream)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield read
    handler.setStream(previous)
    logs.configure(base_config(), force=True)  # back to the text format of the other tests


def test_info_lines_are_json_with_the_request_id_of_the_response(json_app, db, lines):
    r = json_app.test_client().get("/_probe/info")
    assert r.status_code == 200
    request_id = r.headers["X-Request-ID"]
    got = lines()
    hello = [x for x in got if x["message"] == "hello"]
    assert hello and hello[0]["level"] == "INFO" and hello[0]["logger"] == "retreat.probe"
    assert hello[0]["request_id"] == request_id
    access = [x for x in got if x["logger"] == "retreat.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == request_id
    assert access[0]["path"] == "/_probe/info" and access[0]["status"] == 200 and access[0]["method"] == "GET"
    assert access[0]["endpoint"] == "probe_info" and access[0]["duration_ms"] >= 0
    assert all("request_id" in x for x in got)


def test_lines_outside_a_request_carry_a_dash(json_app, lines):
    logging.getLogger("retreat.scheduler").info("tick")
    assert [x["request_id"] for x in lines() if x["message"] == "tick"] == ["-"]


def test_an_unhandled_error_is_logged_exactly_once(json_app, db, lines):
    r = json_app.test_client().get("/_probe/boom")
    assert r.status_code == 500
    errors = [x for x in lines() if x["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == r.headers["X-Request-ID"]
    assert "ZeroDivisionError" in errors[0]["exc_info"]
    access = [x for x in lines() if x["logger"] == "retreat.access"]
    assert [x["status"] for x in access] == [500]


def test_flask_default_handler_is_not_on_the_app_logger(json_app):
    from flask.logging import default_handler

    assert default_handler not in json_app.logger.handlers
    assert logs.own_handler() in logging.getLogger().handlers


def test_text_format_outside_production_carries_the_id(db, lines):
    app = create_app(base_config(LOG_FORMAT=""))  # development/testing default: text
    handler = logs.own_handler()
    stream = io.StringIO()
    handler.setStream(stream)
    r = app.test_client().get("/healthz")
    line = next(x for x in stream.getvalue().splitlines() if "retreat.access" in x)
    assert f"[{r.headers['X-Request-ID']}]" in line and "GET /healthz 200" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


# ---------------------------------------------------------------------------------------------
# X-Request-ID only from the trusted proxy
# ---------------------------------------------------------------------------------------------

NGINX = {"REMOTE_ADDR": "127.0.0.1"}
DIRECT = {"REMOTE_ADDR": "203.0.113.50"}


def _failed_login(client, request_id: str, environ: dict):
    return client.post("/account/login", data={"email": "nobody-rid@example.com", "password": "wrong-password-x"},
                       headers={"X-Request-ID": request_id}, environ_base=environ)


def _last_audit_request_id(db) -> str:
    return db.session.scalar(select(AuditEvent.request_id).where(AuditEvent.action == "auth.login_failed")
                             .order_by(AuditEvent.id.desc()).limit(1))


def test_the_proxy_request_id_is_used_and_audited(db):
    client = create_app(base_config(TRUSTED_PROXY_HOPS=1, TRUSTED_PROXY_ADDRESSES="127.0.0.1")).test_client()
    r = _failed_login(client, "nginx-req.42_abc", NGINX)
    assert r.status_code == 422
    assert r.headers["X-Request-ID"] == "nginx-req.42_abc"
    assert _last_audit_request_id(db) == "nginx-req.42_abc"


@pytest.mark.parametrize("hops, environ, sent", [
    (1, DIRECT, "forged-by-a-client"),        # reached gunicorn past the proxy
    (0, NGINX, "forged-by-a-client"),         # no proxy configured: nobody is trusted
    (1, NGINX, "x" * 65),                     # from the proxy, but too long
    (1, NGINX, "bad id with spaces"),         # from the proxy, but not the safe pattern
])
def test_any_other_request_id_is_replaced(db, hops, environ, sent):
    client = create_app(base_config(TRUSTED_PROXY_HOPS=hops, TRUSTED_PROXY_ADDRESSES="127.0.0.1")).test_client()
    r = _failed_login(client, sent, environ)
    assert r.status_code == 422
    generated = r.headers["X-Request-ID"]
    assert generated != sent and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert _last_audit_request_id(db) == generated
