"""The signed-in browser: the server session (``retreat.accounts.sessions``) behind the cookie.

Flask-Login keeps ``_user_id`` in the signed session cookie and, for "keep me signed in", copies it
into the remember-me cookie. Here that value is the raw server-session id, never the user's id,
so both cookies die with the server session: at sign-out, sign-out-everywhere, a password or
role change, an admin's sign-out and the idle timeout. The session exists from the sign-in
response on, with its last-seen time, so the idle timeout counts from the first request.
"""

from __future__ import annotations

from flask import Flask, flash, g, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from retreat.accounts import sessions as server_sessions
from retreat.accounts.models import User
from retreat.extensions import login_manager
from retreat.web import transaction
from retreat.web.security import wants_json

_CURRENT = "user_session"
_IDLE = "user_session_idle"


@login_manager.user_loader
def load_user(identity: str) -> User | None:
    """One indexed read per request: the live session the cookie names, with its user."""
    row, idle = server_sessions.load_active(identity, ip=request.remote_addr)
    if idle:
        setattr(g, _IDLE, True)
    if row is None:
        return None
    if session.get("_fresh") is False and not row.remember:
        # Flask-Login restores from the remember-me cookie with ``_fresh = False``: only a session
        # that was kept signed in may come back that way.
        return None
    setattr(g, _CURRENT, row)
    return row.user


def current_session() -> server_sessions.UserSession | None:
    """The server session of this request's sign-in (None for anonymous or API-token requests)."""
    if not current_user.is_authenticated:
        return None
    return g.get(_CURRENT)


def sign_in(user: User, *, remember: bool = False) -> server_sessions.UserSession:
    """A fresh session on every sign-in (no fixation): whatever the anonymous session held is
    dropped, a server session opens, and the cookie carries its id. Staff are never remembered."""
    remember = bool(remember) and server_sessions.may_remember(user)
    session.clear()
    row, raw = server_sessions.open_session(user, remember=remember, user_agent=request.user_agent.string,
                                            ip=request.remote_addr)
    login_user(user, remember=remember)
    session["_user_id"] = raw  # also what the remember-me cookie will carry
    session.pop("_id", None)  # Flask-Login's hash of address + browser: not used, not kept in the cookie
    if not remember:
        session["_remember"] = "clear"  # an older remember-me cookie of this browser goes
    session.permanent = False
    setattr(g, _CURRENT, row)
    return row


def forget_browser() -> None:
    """This browser is anonymous from now on: both cookies are deleted. ``session.clear()`` would
    otherwise drop Flask-Login's instruction to delete the remember-me cookie."""
    logout_user()
    session.clear()
    session["_remember"] = "clear"
    g.pop(_CURRENT, None)


def sign_out(reason: str = server_sessions.EndReason.SIGN_OUT) -> None:
    """End this browser's server session for good, then forget it here."""
    row = current_session()
    if row is not None:
        server_sessions.revoke(row, reason)
    forget_browser()


def end_idle_session():
    """``before_request``: a session that just timed out is answered like a sign-out (HTML: the
    login page with a note; JSON: anonymous, so the view answers 401)."""
    if request.endpoint == "static" or current_user.is_authenticated or not g.get(_IDLE):
        return None
    forget_browser()
    transaction.commit_now("an idle session's revocation stands whatever the answer")
    if wants_json():
        return None
    flash("You were signed out after a period of inactivity.", "info")
    return redirect(url_for("account.login", next=request.full_path.rstrip("?")))


def init_app(app: Flask) -> None:
    app.before_request(end_idle_session)
