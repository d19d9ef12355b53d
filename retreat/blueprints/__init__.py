"""The HTTP layer: one package per audience. Views stay thin: load, check, validate, call, answer."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from retreat.blueprints.account import bp as account_bp
    from retreat.blueprints.admin import bp as admin_bp
    from retreat.blueprints.api import register_api
    from retreat.blueprints.consults import bp as consults_bp
    from retreat.blueprints.facilitator import bp as facilitator_bp
    from retreat.blueprints.finance import bp as finance_bp
    from retreat.blueprints.participant import bp as participant_bp
    from retreat.blueprints.provider import bp as provider_bp
    from retreat.blueprints.public import bp as public_bp
    from retreat.blueprints.webhooks import bp as webhooks_bp
    from retreat.blueprints.widget import bp as widget_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(account_bp, url_prefix="/account")
    app.register_blueprint(participant_bp, url_prefix="/me")
    app.register_blueprint(facilitator_bp, url_prefix="/facilitator")
    app.register_blueprint(provider_bp, url_prefix="/provider")
    app.register_blueprint(finance_bp, url_prefix="/finance")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(consults_bp, url_prefix="/consult")
    app.register_blueprint(widget_bp)  # /widget.js and /widget/* (framed by WIDGET_ALLOWED_ORIGINS only)
    register_api(app)
