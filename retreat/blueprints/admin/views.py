from flask import render_template

from retreat.blueprints.admin import bp


@bp.get("/")
def dashboard():
    return render_template("admin/dashboard.html")
