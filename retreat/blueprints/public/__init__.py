from flask import Blueprint

bp = Blueprint("public", __name__)

import retreat.blueprints.public.retreats  # noqa: E402,F401
from retreat.blueprints.public import views  # noqa: E402,F401
from retreat.blueprints.public import unsubscribe  # noqa: E402,F401
from retreat.blueprints.public import followup  # noqa: E402,F401
from retreat.blueprints.public import calendar  # noqa: E402,F401
