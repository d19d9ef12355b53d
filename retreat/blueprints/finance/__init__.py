from flask import Blueprint

from retreat.accounts.models import Role
from retreat.web.security import restrict_blueprint

bp = Blueprint("finance", __name__)
restrict_blueprint(bp, Role.FINANCE)

from retreat.blueprints.finance import views  # noqa: E402,F401
from retreat.blueprints.finance import payments  # noqa: E402,F401
from retreat.blueprints.finance import reports  # noqa: E402,F401
from retreat.blueprints.finance import balances  # noqa: E402,F401
from retreat.blueprints.finance import exports  # noqa: E402,F401
from retreat.blueprints.finance import payouts  # noqa: E402,F401
from retreat.blueprints.finance import reconciliation  # noqa: E402,F401
from retreat.blueprints.finance import documents  # noqa: E402,F401
from retreat.blueprints.finance import discount_codes  # noqa: E402,F401
from retreat.blueprints.finance import scholarships  # noqa: E402,F401
