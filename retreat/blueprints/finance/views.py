from flask import render_template
from flask_login import current_user

from retreat.blueprints.finance import bp
from retreat.hooks import no_store


@bp.get("/")
@no_store
def dashboard():
    return render_template("finance/dashboard.html", user=current_user)
