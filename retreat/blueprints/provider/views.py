from flask import render_template
from flask_login import current_user

from retreat.blueprints.provider import bp
from retreat.hooks import no_store
from retreat.timeutil import now_utc


@bp.get("/")
@no_store
def dashboard():
    today = now_utc().date()
    return render_template("provider/dashboard.html", user=current_user,
                           organization=current_user.provider_organization, today=today)
