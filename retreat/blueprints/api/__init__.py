"""JSON API under /api/v1 (flask-smorest derives the OpenAPI document from the code)."""

from __future__ import annotations

from flask import Flask, abort, current_app, jsonify, request
from sqlalchemy import text

from retreat.extensions import api, csrf, db

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def register_api(app: Flask) -> None:
    from retreat.blueprints.api.account import blp as account_blp
    from retreat.blueprints.api.admin import blp as admin_blp
    from retreat.blueprints.api.clearance import blp as clearance_blp
    from retreat.blueprints.api.docs import bp as docs_bp
    from retreat.blueprints.api.finance import blp as finance_blp
    from retreat.blueprints.api.health import blp as health_blp
    from retreat.blueprints.api.staff import blp as staff_blp
    from retreat.blueprints.api.webhooks import blp as webhooks_blp

    for blp in (health_blp, account_blp, admin_blp, clearance_blp, finance_blp, webhooks_blp, staff_blp):
        api.register_blueprint(blp)
        csrf.exempt(blp)  # bearer tokens only: cookies never authenticate API calls
    from retreat.blueprints.api.cohorts import blp as cohorts_blp

    # Public reads, plus participant endpoints that use the session cookie: those check CSRF
    # themselves after authentication (security.api_session_roles_required).
    api.register_blueprint(cohorts_blp)
    csrf.exempt(cohorts_blp)
    from retreat.blueprints.api.consultations import blp as consultations_blp

    api.register_blueprint(consultations_blp)  # anonymous, CSRF-exempt, rate limited per address
    app.register_blueprint(docs_bp)
    app.extensions["retreat_openapi"] = api.spec  # this app's spec (the Api object is shared)

    @app.before_request
    def _api_body_rules():
        """Under /api a body must be JSON and within MAX_CONTENT_LENGTH, checked before any view runs."""
        if not request.path.startswith("/api/") or request.method not in BODY_METHODS:
            return None
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length and request.content_length > limit:
            abort(413)
        has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")
        if has_body and not request.is_json:
            abort(415)
        return None

    @app.get("/healthz")
    def healthz():
        try:
            db.session.execute(text("SELECT 1"))
            return jsonify(status="ok")
        except Exception:  # noqa: BLE001 - any database failure means "not ready"
            return jsonify(status="unavailable", error="database unreachable"), 503

    from retreat.blueprints.api import readiness

    readiness.register(app)  # GET /readyz: database, Redis, SMTP, scheduler leader
