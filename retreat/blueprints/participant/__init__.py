from flask import Blueprint

from retreat.accounts.models import Role
from retreat.web.security import restrict_blueprint

bp = Blueprint("participant", __name__)
restrict_blueprint(bp, Role.PARTICIPANT)

import retreat.blueprints.participant.enrollments  # noqa: E402,F401
from retreat.blueprints.participant import views  # noqa: E402,F401
from retreat.blueprints.participant import payments  # noqa: E402,F401
from retreat.blueprints.participant import intake  # noqa: E402,F401
from retreat.blueprints.participant import journal  # noqa: E402,F401
from retreat.blueprints.participant import outcomes  # noqa: E402,F401
from retreat.blueprints.participant import circles  # noqa: E402,F401
from retreat.blueprints.participant import checkins  # noqa: E402,F401
from retreat.blueprints.participant import documents  # noqa: E402,F401
from retreat.blueprints.participant import autopay  # noqa: E402,F401
