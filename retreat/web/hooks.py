"""Request hooks: request ids, API tokens, server sessions (web.sessions), staff two-factor, security headers."""

from __future__ import annotations

import functools
import re
import uuid
from datetime import timedelta

from flask import Flask, current_app, flash, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from retreat.accounts.models import STAFF_ROLES, ApiToken, User
from retreat.core import logs, urls
from retreat.core.crypto import hash_token
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web import access_log, embedding, sessions, transaction
from retreat.web.errors import json_error
from retreat.web.proxies import TRUSTED_PEER_ENVIRON_KEY
from retreat.web.security import wants_json

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NO_STORE_ATTR = "no_store"


def no_store(view):
    """Mark a view as showing sensitive (clinical or financial) data: never cached."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        g.no_store = True
        return view(*args, **kwargs)

    return wrapped


def _api_token_user() -> User | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    raw = header[7:].strip()
    if not raw:
        return None
    now = now_utc()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None:
        g.api_token_refusal = "This token is not valid."
        return None
    if token.revoked_at is not None:
        g.api_token_refusal = "This token was revoked."
        return None
    if token.expires_at and token.expires_at <= now:
        g.api_token_refusal = "This token has expired."
        return None
    user = token.user
    if not user.is_active or user.role not in STAFF_ROLES:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        token.last_used_at = now  # coarse, so that reads do not write on every request
        g.api_token_touched = True
    g.api_token = token
    return user


def _keep_token_touch() -> None:
    """A token's last use stays recorded whatever the request's answer: committed before the view
    runs (best effort: a failure only loses the timestamp)."""
    try:
        transaction.commit_now("api token last use, kept whatever the answer")
    except Exception:  # noqa: BLE001 - last-used is best effort
        db.session.rollback()  # the user and token reload on their next use


def request_id_for(incoming: str | None, *, from_trusted_proxy: bool) -> str:
    """The id of this request: the proxy's ``X-Request-ID`` when the request came from the trusted
    proxy (``retreat.web.proxies``) and the value is safe (1-64 of ``[A-Za-z0-9._-]``); a new one
    otherwise. A client reaching the app directly cannot choose the id its audit rows carry."""
    if from_trusted_proxy and incoming and _REQUEST_ID_RE.match(incoming):
        return incoming
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    def _request_id():
        g.request_id = request_id_for(request.headers.get("X-Request-ID"),
                                      from_trusted_proxy=request.environ.get(TRUSTED_PEER_ENVIRON_KEY) is True)
        g.request_id_token = logs.bind_request_id(g.request_id)  # every log line of the request carries it

    # First of all hooks (CSRF's runs earlier otherwise), so that every error page carries the id.
    app.before_request_funcs.setdefault(None, []).insert(0, _request_id)
    access_log.init_app(app)  # before the other after_request hooks are added: it runs last
    embedding.init_app(app)  # the widget API's Origin check (before any view) and its CORS headers

    @app.teardown_request
    def _forget_request_id(_exc):
        logs.reset_request_id(g.pop("request_id_token", None))

    @app.before_request
    def _api_auth():
        if request.path.startswith("/api/"):
            g.api_user = _api_token_user()
            if g.get("api_token_touched"):
                _keep_token_touch()

    sessions.init_app(app)  # the server session behind the cookie; its idle timeout

    @app.before_request
    def _enforce_staff_totp():
        """When two-factor is required for staff, staff must set it up before anything else, on
        every request signed in by cookie, whatever it accepts (API-token requests are exempt)."""
        if request.endpoint in TOTP_EXEMPT or g.get("api_token") is not None:
            return None
        if not current_user.is_authenticated or current_user.role not in STAFF_ROLES or current_user.totp_enabled:
            return None
        from retreat.accounts.users import staff_totp_required

        if not staff_totp_required():
            return None
        if wants_json():
            return json_error(403, TOTP_REQUIRED_MESSAGE,
                              {"two_factor": ["Set up two-factor authentication at /account/two-factor/setup."]})
        flash(TOTP_REQUIRED_MESSAGE + " Set it up to continue.", "warning")
        return redirect(url_for("account.totp_setup"))

    @app.after_request
    def _security_headers(response):
        h = response.headers
        stripe_base = current_app.config.get("STRIPE_API_BASE", "")
        if embedding.is_widget_page(request.path):  # framed by the listed websites only
            h.setdefault("Content-Security-Policy", content_security_policy(stripe_base, embedding.frame_ancestors()))
        else:
            h.setdefault("Content-Security-Policy", content_security_policy(stripe_base))
            h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(self)")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.is_secure or urls.base_url().startswith("https://"):
            h.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if getattr(g, "no_store", False) or current_user.is_authenticated or request.path.startswith("/api/"):
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        h["X-Request-ID"] = g.get("request_id", "")
        return response


@functools.lru_cache(maxsize=16)
def content_security_policy(stripe_api_base: str, frame_ancestors: str = "'none'") -> str:
    """The CSP header for a Stripe API base and the pages allowed to frame this one (built once
    per value, not on every response)."""
    stripe_base = (stripe_api_base or "").rstrip("/")
    stripe_src = "https://js.stripe.com" if "api.stripe.com" in stripe_base or not stripe_base else stripe_base
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {stripe_src}",
        f"frame-src 'self' {stripe_src} https://hooks.stripe.com",
        f"connect-src 'self' {stripe_src if stripe_src != 'https://js.stripe.com' else 'https://api.stripe.com'}",
        "img-src 'self' data:",
        "style-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])


TOTP_REQUIRED_MESSAGE = "Your practice requires two-factor authentication for staff."
# Endpoint names (tests/web/test_session_security.py checks each is in app.url_map): what a staff
# member without two-factor may still open, to set it up or to leave.
TOTP_EXEMPT = frozenset({
    "account.totp_setup", "account.logout", "account.login", "account.totp_verify", "public.index",
    "healthz", "readyz", "static",
})
