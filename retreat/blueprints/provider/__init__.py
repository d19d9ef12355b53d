from flask import Blueprint

from retreat.accounts.models import Role
from retreat.web.security import restrict_blueprint

bp = Blueprint("provider", __name__)
restrict_blueprint(bp, Role.PROVIDER)

from retreat.blueprints.provider import views  # noqa: E402,F401
from retreat.blueprints.provider import outcomes  # noqa: E402,F401
from retreat.blueprints.provider import dosing  # noqa: E402,F401
