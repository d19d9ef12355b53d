"""Request hooks: request ids, session identity, API tokens, idle logout, security headers."""

from __future__ import annotations

import functools
import re
import uuid
from datetime import timedelta

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy import select

from retreat.accounts.models import SENSITIVE_ROLES, STAFF_ROLES, ApiToken, User
from retreat.core import urls
from retreat.core.crypto import hash_token
from retreat.extensions import db, login_manager
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.security import wants_json

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NO_STORE_ATTR = "no_store"
# Activity is recorded to the minute: the idle timeout may sign someone out up to a minute early,
# never late.
LAST_SEEN_RESOLUTION = 60


def no_store(view):
    """Mark a view as showing sensitive (clinical or financial) data: never cached."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        g.no_store = True
        return view(*args, **kwargs)

    return wrapped


@login_manager.user_loader
def load_user(identity: str) -> User | None:
    try:
        user_id, version = identity.split(":", 1)
        user = db.session.get(User, int(user_id))
    except (ValueError, TypeError):
        return None
    if user is None or not user.is_active or str(user.session_version) != version:
        return None  # logged out everywhere, role changed, password changed, or deactivated
    return user


def _api_token_user() -> User | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    raw = header[7:].strip()
    if not raw:
        return None
    now = now_utc()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
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


def idle_timeout_for(user: User) -> timedelta:
    cfg = current_app.config
    minutes = cfg["IDLE_TIMEOUT_MINUTES_STAFF"] if user.role in SENSITIVE_ROLES else cfg["IDLE_TIMEOUT_MINUTES"]
    return timedelta(minutes=minutes)


def init_app(app: Flask) -> None:
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex

    # First of all hooks (CSRF's runs earlier otherwise), so that every error page carries the id.
    app.before_request_funcs.setdefault(None, []).insert(0, _request_id)

    @app.before_request
    def _api_auth():
        if request.path.startswith("/api/"):
            g.api_user = _api_token_user()
            if g.get("api_token_touched"):
                _keep_token_touch()

    @app.before_request
    def _idle_logout():
        if request.endpoint == "static" or not current_user.is_authenticated:
            return None
        now = now_utc()
        last_seen = session.get("last_seen")
        if last_seen is not None:
            try:
                idle = now.timestamp() - float(last_seen)
            except (TypeError, ValueError):
                idle = float("inf")
            if idle > idle_timeout_for(current_user).total_seconds():
                logout_user()
                session.clear()
                if wants_json():
                    return None
                flash("You were signed out after a period of inactivity.", "info")
                return redirect(url_for("account.login", next=request.full_path.rstrip("?")))
        if last_seen is None or now.timestamp() - float(last_seen) >= LAST_SEEN_RESOLUTION:
            session["last_seen"] = int(now.timestamp())  # not on every request: no new cookie to sign and send
        return None

    @app.before_request
    def _enforce_staff_totp():
        """When admins require two-factor for staff, staff must set it up before anything else."""
        if not current_user.is_authenticated or current_user.role not in STAFF_ROLES:
            return None
        if current_user.totp_enabled or request.endpoint in _TOTP_EXEMPT or request.endpoint == "static":
            return None
        from retreat.accounts.users import staff_totp_required

        if staff_totp_required():
            if wants_json() or "account.totp_setup" not in current_app.view_functions:
                return None
            flash("Your practice requires two-factor authentication for staff. Set it up to continue.", "warning")
            return redirect(url_for("account.totp_setup"))
        return None

    @app.after_request
    def _security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", content_security_policy(current_app.config.get("STRIPE_API_BASE", "")))
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
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
def content_security_policy(stripe_api_base: str) -> str:
    """The CSP header for a Stripe API base (built once per value, not on every response)."""
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
        "frame-ancestors 'none'",
    ])


_TOTP_EXEMPT = frozenset({
    "account.totp_setup", "account.logout", "account.login", "account.totp_verify", "public.index",
    "api.health",
})
