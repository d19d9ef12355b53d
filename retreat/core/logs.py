"""Logging for every process (web workers, the flask CLI, the scheduler): one ``dictConfig``.

``configure(settings)`` is called by ``create_app`` (hence by wsgi.py, gunicorn's workers, every
flask command and ``flask scheduler run``). It installs one handler on the root logger, to stderr
(stdout stays for what commands print, e.g. ``flask keys generate``):

- ``LOG_FORMAT``: ``json`` (python-json-logger, one object per line: ``time``, ``level``,
  ``logger``, ``request_id``, ``message`` and any ``extra`` fields) or ``text``; default ``json``
  in production, ``text`` elsewhere.
- ``LOG_LEVEL``: a level name (default ``INFO``).

Every line carries ``request_id``: the id of the request being served (``retreat.web.hooks`` binds
it with ``bind_request_id`` and resets it after the request), ``-`` outside a request. Errors are
logged once: Flask's own handler on the app's logger is removed, records go to the root handler.
Handlers that someone else put on the root logger (pytest's capture, an embedding program) stay.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar, Token

from retreat.config import LOG_FORMATS, LOG_LEVELS

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure", "bind_request_id", "reset_request_id", "current_request_id"]

NO_REQUEST = "-"
HANDLER_NAME = "retreat"

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

_request_id: ContextVar[str] = ContextVar("retreat_request_id", default=NO_REQUEST)
_applied: tuple | None = None


def bind_request_id(request_id: str | None) -> Token:
    """Make ``request_id`` the id of every line logged from here on in this context."""
    return _request_id.set(request_id or NO_REQUEST)


def reset_request_id(token: Token | None = None) -> None:
    if token is not None:
        try:
            _request_id.reset(token)
            return
        except ValueError:  # a token from another context: just clear
            pass
    _request_id.set(NO_REQUEST)


def current_request_id() -> str:
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record (an explicit ``extra={"request_id": ...}`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get()
        return True


def log_format(settings: dict) -> str:
    configured = str(settings.get("LOG_FORMAT") or "").strip().lower()
    if configured:
        return configured
    return "json" if settings.get("ENV_NAME") == "production" else "text"


def log_level(settings: dict) -> str:
    return str(settings.get("LOG_LEVEL") or "INFO").strip().upper()


def formatters() -> dict:
    return {
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS,
                 "rename_fields": dict(JSON_RENAMES)},
        "text": {"format": TEXT_FORMAT},
    }


def logging_config(settings: dict) -> dict:
    """The ``dictConfig`` of a retreat process."""
    level = log_level(settings)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": formatters(),
        "handlers": {HANDLER_NAME: {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                    "formatter": log_format(settings), "filters": ["request_id"]}},
        "root": {"level": level, "handlers": [HANDLER_NAME]},
        "loggers": {
            # SQLAlchemy's engine logger echoes every statement at INFO: only when asked for.
            "sqlalchemy.engine": {"level": "WARNING"},
            "alembic.runtime.plugins": {"level": "WARNING"},  # "setup plugin ..." at every start
            # "Running job ..." / "executed successfully" for every job every few seconds: the
            # scheduler's own lines say what a run did (retreat.scheduler).
            "apscheduler.executors": {"level": "WARNING"},
        },
    }


def configure(settings: dict, *, force: bool = False) -> None:
    """Apply ``logging_config(settings)`` once per process (again only when the settings change)."""
    global _applied
    key = (log_format(settings), log_level(settings))
    if key == _applied and not force and own_handler() is not None:
        return
    root = logging.getLogger()
    foreign = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    logging.config.dictConfig(logging_config(settings))
    for handler in foreign:  # dictConfig replaced the root's handlers: keep the ones we did not make
        root.addHandler(handler)
    _applied = key
    drop_flask_default_handler()


def drop_flask_default_handler() -> None:
    """Flask adds its own stderr handler to the app's logger when none is configured: with ours on
    the root logger each error would be printed twice."""
    try:
        from flask.logging import default_handler
    except ImportError:  # pragma: no cover
        return
    for name in ("retreat", "flask.app"):
        logging.getLogger(name).removeHandler(default_handler)


def own_handler() -> logging.Handler | None:
    """The handler ``configure`` put on the root logger (tests swap its stream to read lines)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            return handler
    return None


def gunicorn_logconfig(settings: dict) -> dict:
    """gunicorn's ``logconfig_dict``: its own error log in the same format, with request ids."""
    config = logging_config(settings)
    config["loggers"] = {
        "gunicorn.error": {"level": log_level(settings), "handlers": [HANDLER_NAME], "propagate": False},
        # The access log is the app's own line (retreat.web.access_log: request id, redactable path);
        # gunicorn's would repeat it with the raw request line, query string and all.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    }
    return config
