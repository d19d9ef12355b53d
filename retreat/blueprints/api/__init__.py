"""JSON API under /api/v1 (flask-smorest derives the OpenAPI document from the code)."""

from __future__ import annotations

from flask import Flask, jsonify
from sqlalchemy import text

from retreat.extensions import api, csrf, db


def register_api(app: Flask) -> None:
    from retreat.blueprints.api.health import blp as health_blp

    api.register_blueprint(health_blp)
    csrf.exempt("retreat.blueprints.api.health")
    from retreat.blueprints.api.consultations import blp as consultations_blp

    api.register_blueprint(consultations_blp)  # anonymous, CSRF-exempt, rate limited per address

    @app.get("/healthz")
    def healthz():
        try:
            db.session.execute(text("SELECT 1"))
            return jsonify(status="ok")
        except Exception:  # noqa: BLE001 - any database failure means "not ready"
            db.session.rollback()
            return jsonify(status="unavailable", error="database unreachable"), 503
