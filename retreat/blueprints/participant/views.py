from flask import render_template
from flask_login import current_user

from retreat.blueprints.participant import bp


@bp.get("/")
def dashboard():
    return render_template("participant/dashboard.html", user=current_user)
