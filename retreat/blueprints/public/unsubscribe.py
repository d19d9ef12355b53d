"""One-click unsubscribe from non-essential email (RFC 8058).

GET shows a confirmation page (link scanners must not unsubscribe anyone); POST unsubscribes.
Mail clients POST ``List-Unsubscribe=One-Click`` to the same URL without a CSRF token: that one
request shape is exempt from CSRF; every other POST must carry the form's token.
"""

from __future__ import annotations

from flask import current_app, render_template, request

from retreat.accounts import preferences
from retreat.blueprints.public import bp
from retreat.core.errors import DomainError
from retreat.extensions import csrf
from retreat.messaging import unsubscribe as links
from retreat.web.security import request_context


def _address(token: str) -> tuple[str | None, str | None]:
    try:
        return links.email_for_token(token, current_app.config["SECRET_KEY"]), None
    except DomainError as exc:
        return None, exc.message


@bp.get("/unsubscribe/<token>")
def unsubscribe(token: str):
    email, error = _address(token)
    if error:
        return render_template("public/unsubscribe.html", error=error), 400
    return render_template("public/unsubscribe.html", email=email, token=token, done=False)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token: str):
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()  # the confirmation form: a normal CSRF-checked POST
    try:
        user = preferences.unsubscribe(token, secret=current_app.config["SECRET_KEY"], ctx=request_context())
    except DomainError as exc:
        if one_click:
            return {"error": exc.message}, exc.status
        return render_template("public/unsubscribe.html", error=exc.message), exc.status
    if one_click:
        return {"unsubscribed": True}, 200
    return render_template("public/unsubscribe.html", email=user.email, done=True)
