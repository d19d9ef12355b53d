"""Capability tokens never reach the access log (issue #22 item 2): the redaction rules, and
gunicorn's own access-log formatting with gunicorn.conf.py's logger."""

from __future__ import annotations

import datetime
import logging
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from retreat.web.log_redaction import redact, redact_query

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "eyJmIjoyMTMsIm4iOiI1c1NGX0xBLWk.SECRETsig_-x"


@pytest.mark.parametrize("url, expected", [
    (f"/account/reset-password/{TOKEN}", "/account/reset-password/[redacted]"),
    (f"/account/verify-email/{TOKEN}", "/account/verify-email/[redacted]"),
    (f"/consult/manage/{TOKEN}/reschedule", "/consult/manage/[redacted]/reschedule"),
    (f"/consult/claim/{TOKEN}", "/consult/claim/[redacted]"),
    (f"/follow-up/{TOKEN}", "/follow-up/[redacted]"),
    (f"/unsubscribe/{TOKEN}", "/unsubscribe/[redacted]"),
    (f"https://retreat.example/consult/manage/{TOKEN}?x=1", "https://retreat.example/consult/manage/[redacted]?x=1"),
    (f"/somewhere?token={TOKEN}&page=2", "/somewhere?token=[redacted]&page=2"),
    (f"/x?a=1&reset_token={TOKEN}", "/x?a=1&reset_token=[redacted]"),
    ("/follow-up/answer/42", "/follow-up/answer/42"),  # token-free already
    ("/consult/manage", "/consult/manage"),
    ("/unsubscribe", "/unsubscribe"),
    ("/cohorts?page=2", "/cohorts?page=2"),
    ("", ""),
])
def test_redact(url, expected):
    assert redact(url) == expected
    assert TOKEN not in (redact(url) or "")


def test_redact_query():
    assert redact_query(f"token={TOKEN}&page=2") == "token=[redacted]&page=2"
    assert redact_query("page=2") == "page=2" and redact_query("") == ""


def test_gunicorn_access_log_line_has_no_token(monkeypatch, capsys):
    monkeypatch.setenv("SECRET_KEY", "gunicorn-log-test-secret-key-0123456789abcdef")
    monkeypatch.setenv("RETREAT_ENV", "development")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("logger_class", settings["logger_class"])
    logger = cfg.logger_class(cfg)
    stream = logging.StreamHandler()
    records = []
    stream.emit = records.append
    logger.access_log.handlers = [stream]
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/account/reset-password/{TOKEN}?token={TOKEN}",
               "PATH_INFO": f"/account/reset-password/{TOKEN}", "QUERY_STRING": f"token={TOKEN}",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": f"https://mail.example/consult/manage/{TOKEN}"}
    resp = SimpleNamespace(status="303 SEE OTHER", sent=0, headers=[])
    req = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    logger.access(resp, req, environ, datetime.timedelta(milliseconds=5))
    line = records[0].getMessage()
    assert TOKEN not in line, line
    assert '"GET /account/reset-password/[redacted]?token=[redacted] HTTP/1.1" 303' in line, line


def test_calendar_feed_tokens_are_redacted_and_the_app_access_log_uses_the_same_rule():
    from retreat.web.access_log import _logged_path

    path = "/calendar/cal_abcDEF123-_xyz.ics"
    assert redact(path) == "/calendar/[redacted]"
    assert _logged_path(path) == "/calendar/[redacted]"
    assert _logged_path("/account/reset-password/tok.en.sig") == "/account/reset-password/[redacted]"
    assert _logged_path("/me/circles") == "/me/circles"
