"""Inbound webhooks from other services (public, CSRF-exempt, authenticated by signature)."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from retreat.blueprints.webhooks import stripe  # noqa: E402,F401
from retreat.blueprints.webhooks import sms  # noqa: E402,F401
