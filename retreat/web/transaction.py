"""The one commit point of a request: views and rules never commit or roll back themselves.

After the view (or a request hook, or an error handler) has produced the response:

- status < 400 (a page, JSON, a redirect): the request's work is committed;
- status >= 400, or an exception nobody handled: it is rolled back, so a refused form, a 404
  or a failed rule changes nothing.

A database error at commit (a constraint raced past a check, the database gone) is answered by
the app's error handlers (a 503, or a logged 500), never by a half-sent success. A view that
must tell a constraint race apart (a 409 of its own) flushes inside its ``try``.

Three named exceptions, each with a reason a reader can grep for:

- ``keep(reason)``: commit although the answer is an error (4xx): the audit event of a refused
  clinical read must stay although the answer is 404. It wins over ``discard``; a server error
  (5xx) still rolls back.
- ``discard(reason)``: roll back although the answer is a success or a redirect: a refused
  change shown as a flash message and a redirect back.
- ``commit_now(reason)``: commit what is done so far, now: before an outside call (Stripe,
  SMTP) or a streamed response, so that nothing stays locked meanwhile.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g

from retreat.extensions import db

_KEEP = "_transaction_keep"
_DISCARD = "_transaction_discard"
log = logging.getLogger("retreat.transaction")


def keep(reason: str) -> None:
    """Commit this request's work even though its answer is a client error (4xx)."""
    setattr(g, _KEEP, reason)


def discard(reason: str) -> None:
    """Roll this request's work back even though its answer is a success or a redirect."""
    setattr(g, _DISCARD, reason)


def commit_now(reason: str) -> None:
    """Commit the work so far (``reason`` says why it cannot wait for the end of the request)."""
    log.debug("commit now: %s", reason)
    db.session.commit()


def should_commit(status: int) -> bool:
    """The rule: a server error always rolls back; ``keep`` commits (a refusal's audit event);
    ``discard`` rolls back; otherwise success and redirects commit and client errors roll back."""
    if status >= 500:
        return False
    if g.get(_KEEP):
        return True
    if g.get(_DISCARD):
        return False
    return status < 400


def finish(response):
    """``after_request``: commit or roll back; a failing commit becomes the error handlers' answer."""
    if not should_commit(response.status_code):
        _roll_back_quietly()
        return response
    try:
        commit_keeping_rows()
    except Exception as err:  # noqa: BLE001 - answered by the app's error handlers
        db.session.rollback()
        return current_app.make_response(current_app.handle_user_exception(err))
    return response


def commit_keeping_rows() -> None:
    """Commit without expiring the loaded rows: the answer is complete, and what still reads them
    (the signed-in user, for the response headers) would otherwise load them again."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _roll_back_quietly() -> None:
    """Roll back; a connection the database already dropped has nothing left to undo."""
    try:
        db.session.rollback()
    except Exception as err:  # noqa: BLE001 - the session is removed at teardown anyway
        log.warning("rollback failed: %s", err)


def _roll_back_on_exception(exc: BaseException | None) -> None:
    """``teardown_request``: an exception that produced no response leaves nothing behind."""
    if exc is not None:
        _roll_back_quietly()


def init_app(app: Flask) -> None:
    """Install the commit point. Call it after the hooks that add headers, so that it runs
    before them (after_request functions run last-registered first) and they decorate whatever
    response it settles on; its teardown runs before the app context's session removal."""
    app.after_request(finish)
    app.teardown_request(_roll_back_on_exception)
