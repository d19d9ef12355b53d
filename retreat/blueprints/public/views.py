from flask import redirect, render_template, url_for
from flask_login import current_user

from retreat.blueprints.public import bp
from retreat.web.templating import NAV


@bp.get("/")
def index():
    return render_template("public/index.html")


@bp.get("/home")
def home():
    """Where a signed-in person lands: their own portal."""
    if not current_user.is_authenticated:
        return redirect(url_for("public.index"))
    endpoint = NAV.get(current_user.role, [("public.index", "")])[0][0]
    return redirect(url_for(endpoint))
