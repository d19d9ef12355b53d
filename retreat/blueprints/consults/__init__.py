"""Public consult booking and the guest's manage pages (signed link, no account needed)."""

from flask import Blueprint

bp = Blueprint("consults", __name__)

from retreat.blueprints.consults import sms, views  # noqa: E402,F401
