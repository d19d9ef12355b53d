"""Authorisation in one place: roles, access decorators, per-object checks.

Tokens and field encryption live in ``retreat.core.crypto``.

HTML requests by anonymous users are redirected to the login page; API requests get 401.
A signed-in user with the wrong role gets 403 (HTML page or JSON body).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable

from flask import Blueprint, abort, current_app, g, jsonify, redirect, request
from flask_login import current_user, login_url
from werkzeug.datastructures import WWWAuthenticate

from retreat.accounts.models import Role, User
from retreat.core.context import RequestContext

# --------------------------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------------------------


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/webhooks/")) or request.path in ("/healthz", "/readyz"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def request_context() -> RequestContext:
    """The audit context of the current request, handed to services."""
    return RequestContext(ip=request.remote_addr, request_id=getattr(g, "request_id", None))


def acting_user() -> User | None:
    """The authenticated user: session login or API bearer token."""
    api_user = getattr(g, "api_user", None)
    if api_user is not None:
        return api_user
    if current_user and current_user.is_authenticated:
        return current_user._get_current_object()  # type: ignore[attr-defined]
    return None


# --------------------------------------------------------------------------------------------
# Role checks
# --------------------------------------------------------------------------------------------


def _deny_anonymous():
    if wants_json():
        abort(401)
    return redirect(login_url("account.login", next_url=request.full_path.rstrip("?")))


def check_roles(roles: Iterable[str]):
    """Return a response to short-circuit with, or None when access is allowed."""
    user = acting_user()
    if user is None:
        return _deny_anonymous()
    if user.role not in set(roles):
        abort(403)
    return None


def roles_required(*roles: Role | str) -> Callable:
    """Decorator for single views."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            denied = check_roles(roles)
            if denied is not None:
                return denied
            return view(*args, **kwargs)

        wrapped.allowed_roles = tuple(str(r) for r in roles)  # type: ignore[attr-defined]
        return wrapped

    return decorator


def restrict_blueprint(bp: Blueprint, *roles: Role | str) -> None:
    """Every view of ``bp`` needs one of ``roles``. Views can be opened with ``public_view``."""
    allowed = tuple(str(r) for r in roles)
    bp.allowed_roles = allowed  # type: ignore[attr-defined]

    @bp.before_request
    def _guard():
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, "is_public_view", False):
            return None
        return check_roles(allowed)


def public_view(view):
    view.is_public_view = True
    return view


def login_required_any(view):
    """Any signed-in user, whatever the role."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if acting_user() is None:
            return _deny_anonymous()
        return view(*args, **kwargs)

    wrapped.allowed_roles = tuple(r.value for r in Role)  # type: ignore[attr-defined]
    return wrapped


API_AUTH_DOC = {
    "security": [{"bearerAuth": []}],
    "responses": {
        "401": {"description": "No valid bearer token.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "403": {"description": "The token's user does not have a role allowed here.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    },
}


def api_roles_required(*roles: Role | str) -> Callable:
    """Decorator for API views: a valid bearer token of one of ``roles``.

    No or invalid token -> 401 with ``WWW-Authenticate: Bearer``; a wrong role -> 403. Session
    cookies never authenticate API calls. Exposes ``allowed_roles`` like ``roles_required`` and
    declares the bearer security scheme (plus its 401/403 answers) on the OpenAPI operation.
    Put it directly under ``@blp.route`` so that access is checked before the input is parsed.
    """
    allowed = tuple(str(r) for r in roles)

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = getattr(g, "api_user", None)
            if user is None:
                return _api_unauthenticated()
            if user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
        apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = copy.deepcopy(API_AUTH_DOC["security"])
        for code, doc in copy.deepcopy(API_AUTH_DOC["responses"]).items():
            manual.setdefault("responses", {}).setdefault(code, doc)  # a scope's 403 stays
        manual["description"] = (manual.get("description", "") + f"\n\nRoles: {', '.join(allowed)}.").strip()
        wrapped._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _api_unauthenticated():
    """401 naming why: no token, an unknown one, a revoked or an expired one."""
    message = g.get("api_token_refusal") or "Send a bearer token: Authorization: Bearer <token>."
    resp = jsonify({"error": message})  # the API's error shape (web.errors imports this module)
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = WWWAuthenticate("bearer", {"realm": "api"}).to_header()
    return resp


def api_scope_required(scope: str) -> Callable:
    """Decorator for API views, under ``api_roles_required``: the token must carry ``scope``.

    Scopes only narrow: the role check still applies first. A token without scopes (``scopes`` is
    null) keeps the full access of its role. A token lacking the scope -> 403
    ``{"error": "This token lacks the scope <scope>.", "errors": {"scope": [...]}}``; nothing runs.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            from retreat.accounts.api_tokens import token_allows

            if getattr(g, "api_user", None) is None:
                return _api_unauthenticated()
            if not token_allows(g.get("api_token"), scope):
                resp = jsonify({"error": f"This token lacks the scope {scope}.",
                                "errors": {"scope": [f"Create a token with the scope {scope} at /account/api-tokens."]}})
                resp.status_code = 403
                return resp
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # type: ignore[attr-defined]
        for attr in ("allowed_roles",):
            if hasattr(view, attr):
                setattr(wrapped, attr, getattr(view, attr))
        apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = copy.deepcopy(API_AUTH_DOC["security"])
        manual["x-required-scope"] = scope
        manual.setdefault("responses", {})["403"] = {
            "description": f"The token's role is not allowed here, or the token lacks the scope {scope}.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                             "example": {"error": f"This token lacks the scope {scope}."}}}}
        manual["description"] = (manual.get("description", "") + f"\n\nScope: {scope}.").strip()
        wrapped._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapped

    return decorator


SESSION_AUTH_DOC = {
    "security": [{"cookieAuth": []}],
    "responses": {
        "401": {"description": "Not signed in.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "403": {"description": "The signed-in user does not have a role allowed here.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    },
}


def api_session_doc(view):
    """Declare cookie (session) authentication on an API operation in the OpenAPI document."""
    apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = copy.deepcopy(SESSION_AUTH_DOC["security"])
    manual.setdefault("responses", {}).update(copy.deepcopy(SESSION_AUTH_DOC["responses"]))
    view._apidoc = apidoc
    return view


def api_session_roles_required(*roles: Role | str) -> Callable:
    """Decorator for the few API views the signed-in web app calls (participants have no tokens).

    Authenticates with the session cookie, then checks CSRF (``X-CSRFToken`` header) on unsafe
    methods: anonymous -> 401 JSON, wrong role -> 403 JSON, missing token -> 400. Exposes
    ``allowed_roles`` and ``session_auth`` for the role matrix. For MethodView classes, list it in
    the class's ``decorators``.
    """
    allowed = tuple(str(r) for r in roles)

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not (current_user and current_user.is_authenticated):
                abort(401)
            if current_user.role not in allowed:
                abort(403)
            if request.method not in ("GET", "HEAD", "OPTIONS") and current_app.config.get("WTF_CSRF_ENABLED", True):
                from retreat.extensions import csrf

                csrf.protect()
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
        wrapped.session_auth = True  # type: ignore[attr-defined]
        return wrapped

    return decorator


def require_object(condition: bool) -> None:
    """Per-object check: 404 rather than 403 so that ids of others' objects are not confirmed."""
    if not condition:
        abort(404)


# --------------------------------------------------------------------------------------------
# Per-object access rules reused by later features
# --------------------------------------------------------------------------------------------


def is_same_user(user: User | None, owner_id: int | None) -> bool:
    return user is not None and owner_id is not None and user.id == owner_id


def is_member_of_provider_org(user: User | None, organization_id: int | None) -> bool:
    return (
        user is not None
        and user.role == Role.PROVIDER
        and organization_id is not None
        and user.provider_organization_id == organization_id
    )
