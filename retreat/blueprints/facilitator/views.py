from flask import render_template
from flask_login import current_user

from retreat.blueprints.facilitator import bp
from retreat.web.hooks import no_store


@bp.get("/")
@no_store
def dashboard():
    from retreat.blueprints.facilitator.followups import dashboard_context

    return render_template("facilitator/dashboard.html", user=current_user, **dashboard_context())
