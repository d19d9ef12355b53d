from flask import Blueprint

bp = Blueprint("account", __name__)

from retreat.blueprints.account import views  # noqa: E402,F401
