"""The application's access log: one INFO line per request on the ``retreat.access`` logger.

It carries the request id like every other line (``retreat.core.logs``), and as fields (JSON) the
method, the logged path, the status, the duration in milliseconds, the endpoint and the client
address. The path goes through ``_logged_path`` only (no query string: queries may carry tokens),
the single place where capability tokens in paths are redacted.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from retreat.web import log_redaction

log = logging.getLogger("retreat.access")
STARTED_AT = "request_started_at"


def _logged_path(path: str) -> str:
    """The request path as the access log writes it: capability tokens redacted."""
    return log_redaction.redact(path) or path


def elapsed_seconds() -> float:
    """Seconds since this request's first hook ran (0 if it never did)."""
    started = g.get(STARTED_AT)
    return max(time.perf_counter() - started, 0.0) if started is not None else 0.0


def init_app(app: Flask) -> None:
    def _start_clock():
        g.setdefault(STARTED_AT, time.perf_counter())

    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)

    def _access_line(response):
        if log.isEnabledFor(logging.INFO):
            duration_ms = round(elapsed_seconds() * 1000, 1)
            path = _logged_path(request.path)
            log.info("%s %s %s %.1fms", request.method, path, response.status_code, duration_ms,
                     extra={"method": request.method, "path": path, "status": response.status_code,
                            "duration_ms": duration_ms, "endpoint": request.endpoint or "-",
                            "remote_addr": request.remote_addr or "-"})
        return response

    # Index 0 of the after_request list runs last (they run in reverse): the line has the final status.
    app.after_request_funcs.setdefault(None, []).insert(0, _access_line)
