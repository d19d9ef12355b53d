from flask import Blueprint

bp = Blueprint("account", __name__)

from retreat.blueprints.account import views  # noqa: E402,F401
from retreat.blueprints.account import calendar  # noqa: E402,F401
from retreat.blueprints.account import api_tokens  # noqa: E402,F401
from retreat.blueprints.account import sms  # noqa: E402,F401
