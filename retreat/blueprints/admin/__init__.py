from flask import Blueprint

from retreat.accounts.models import Role
from retreat.web.security import restrict_blueprint

bp = Blueprint("admin", __name__)
restrict_blueprint(bp, Role.ADMIN)

from retreat.blueprints.admin import views  # noqa: E402,F401
from retreat.blueprints.admin import break_glass  # noqa: E402,F401
from retreat.blueprints.admin import messages  # noqa: E402,F401
from retreat.blueprints.admin import deletion_requests  # noqa: E402,F401
from retreat.blueprints.admin import webhooks  # noqa: E402,F401
from retreat.blueprints.admin import sms  # noqa: E402,F401
