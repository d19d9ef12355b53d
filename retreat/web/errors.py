"""Friendly error pages for people, one JSON error shape for programs.

JSON: ``{"error": "message", "errors": {"field": ["message"]}}``. A 500 is always a bug: it is
logged with the request id and the person sees a calm page with that id.
"""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.web.security import wants_json

MESSAGES = {
    400: ("Bad request", "We could not understand that request."),
    401: ("Sign in needed", "Sign in to continue."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "We could not find that page. It may have moved or never existed."),
    405: ("Method not allowed", "That action is not available here."),
    409: ("Conflict", "Something changed while you were working. Please try again."),
    413: ("Too large", "That upload or request is larger than we accept."),
    415: ("Unsupported type", "Send the request body as JSON (Content-Type: application/json)."),
    422: ("Check the form", "Some fields need attention."),
    429: ("Slow down", "Too many attempts. Please wait a minute and try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. It has been logged."),
    503: ("Temporarily unavailable", "We cannot reach our database right now. Please try again shortly."),
}


def json_error(status: int, message: str | None = None, errors: dict | None = None):
    body = {"error": message or MESSAGES.get(status, ("Error", "Error"))[1]}
    if errors:
        body["errors"] = errors
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _html_error(status: int, message: str | None = None):
    title, default = MESSAGES.get(status, ("Error", "Something went wrong."))

    def render(status, title, message):
        return render_template("errors/error.html", status=status, title=title,
                               message=message, request_id=g.get("request_id")), status

    try:
        return render(status, title, message or default)
    except Exception as exc:
        # The page's layout loads the signed-in user: with the database gone that fails too, and
        # an error inside an error handler would become a bare 500.
        if not database_unavailable(exc):
            raise
        _forget_user()
        return render(503, *MESSAGES[503])


def _forget_user() -> None:
    """Render the rest of this request as an anonymous visitor: no database read for the layout."""
    from retreat.extensions import login_manager

    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is already gone
        pass
    g._login_user = login_manager.anonymous_user()


def error_response(status: int, message: str | None = None, errors: dict | None = None):
    if wants_json():
        return json_error(status, message, errors)
    return _html_error(status, message)


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(err):
        return error_response(400, "Your form expired or was sent from elsewhere. Reload the page and try again.")

    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        resp = current_app.make_response(error_response(err.status, err.message, err.errors or None))
        if getattr(err, "retry_after", None):  # a refused attempt says when to try again
            resp.headers["Retry-After"] = str(err.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        status = err.code or 500
        message = None
        data = getattr(err, "data", None)  # flask-smorest / webargs validation errors
        errors = None
        if isinstance(data, dict) and isinstance(data.get("messages"), dict) and status == 400 \
                and set(data["messages"]) == {"query"}:
            # an API view that answers bad filters with 400 (``error_status_code=400``), field by field
            errors = _flatten_webargs(data["messages"])
            message = "Some query parameters are invalid."
        elif isinstance(data, dict) and "messages" in data and status == 400:
            # webargs: the body is not valid JSON at all (nothing to report per field)
            message = "The request body is not valid JSON."
        elif isinstance(data, dict) and "messages" in data:
            errors = _flatten_webargs(data["messages"])
            status = 422
            message = "Some fields are invalid."
        elif status in (400, 404, 405, 413, 415, 429) and err.description and err.description != type(err).description:
            message = err.description
        if status == 429:
            message = MESSAGES[429][1]
        resp = error_response(status, message, errors)
        if isinstance(resp, tuple):
            body, code = resp
            resp = current_app.make_response((body, code))
        if status == 405 and hasattr(err, "valid_methods") and err.valid_methods:
            resp.headers["Allow"] = ", ".join(err.valid_methods)
        for k, v in (err.get_headers() or []):
            if k.lower() in {"retry-after", "www-authenticate"}:
                resp.headers[k] = v
        return resp

    @app.errorhandler(Exception)
    def _unhandled(err: Exception):
        try:  # a failed statement leaves the session unusable: the error page reads the user again
            db.session.rollback()
        except Exception:  # noqa: BLE001
            pass
        if database_unavailable(err):
            current_app.logger.warning("database unavailable (request %s): %s", g.get("request_id"), err)
            _forget_user()
            resp = error_response(503)
            if isinstance(resp, tuple):
                resp = current_app.make_response(resp)
            resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return resp
        current_app.logger.exception("unhandled error (request %s)", g.get("request_id"))
        if current_app.config.get("PROPAGATE_EXCEPTIONS") and current_app.testing:
            raise err
        return error_response(InternalServerError.code)


RETRY_AFTER_SECONDS = 5


def database_unavailable(err: BaseException) -> bool:
    """The database is down, restarting, unreachable or too busy: a 503 (try again), not a bug.

    OperationalError covers refused/lost connections, "the database system is starting up",
    administrator shutdowns and statement/lock timeouts; InterfaceError a connection that was
    closed under us; DBAPIError with ``connection_invalidated`` a disconnect SQLAlchemy detected;
    sqlalchemy's TimeoutError a pool with no free connection within ``pool_timeout``.
    """
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(err, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(err, DBAPIError) and bool(getattr(err, "connection_invalidated", False))


def _flatten_webargs(messages) -> dict:
    """webargs nests messages by location (json, query, ...); the API reports fields only."""
    out: dict[str, list[str]] = {}
    if not isinstance(messages, dict):
        return {"_body": [str(messages)]}
    for loc, fields in messages.items():
        if isinstance(fields, dict):
            for field, msgs in fields.items():
                out[str(field)] = _as_list(msgs)
        else:
            out[str(loc)] = _as_list(fields)
    return out


def _as_list(msgs) -> list[str]:
    if isinstance(msgs, list):
        return [m if isinstance(m, str) else str(m) for m in msgs]
    if isinstance(msgs, dict):
        return [f"{k}: {', '.join(_as_list(v))}" for k, v in msgs.items()]
    return [str(msgs)]
