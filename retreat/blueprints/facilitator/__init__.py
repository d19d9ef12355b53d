from flask import Blueprint

from retreat.accounts.models import Role
from retreat.web.security import restrict_blueprint

bp = Blueprint("facilitator", __name__)
restrict_blueprint(bp, Role.FACILITATOR, Role.ADMIN)

import retreat.blueprints.facilitator.cohorts  # noqa: E402,F401
import retreat.blueprints.facilitator.consults  # noqa: E402,F401  (consult pages)
from retreat.blueprints.facilitator import views  # noqa: E402,F401
from retreat.blueprints.facilitator import clearance  # noqa: E402,F401
from retreat.blueprints.facilitator import journal  # noqa: E402,F401
from retreat.blueprints.facilitator import outcomes  # noqa: E402,F401
from retreat.blueprints.facilitator import followups  # noqa: E402,F401
from retreat.blueprints.facilitator import integration  # noqa: E402,F401
