"""One-click unsubscribe from non-essential email (RFC 8058).

GET shows a confirmation page (link scanners must not unsubscribe anyone); POST unsubscribes.
Mail clients POST ``List-Unsubscribe=One-Click`` to the same URL without a CSRF token: that one
request shape is exempt from CSRF; every other POST must carry the form's token.

The emailed link is a capability link (``web.capability_links``): its GET checks the token, keeps
it in the session and answers 303 to ``/unsubscribe``, the confirmation page, whose form posts
there (no token in either address). The one-click POST to the token address stays as it is.
"""

from __future__ import annotations

from flask import current_app, render_template, request, url_for

from retreat.accounts import preferences
from retreat.blueprints.public import bp
from retreat.core.errors import DomainError
from retreat.extensions import csrf
from retreat.messaging import unsubscribe as links
from retreat.web import capability_links
from retreat.web.hooks import no_store
from retreat.web.security import request_context

UNSUBSCRIBE_LINK = "unsubscribe"
LINK_NOT_HELD = "This page opens from the unsubscribe link in one of our emails. Please open that link again."


def _address(token: str) -> tuple[str | None, str | None]:
    try:
        return links.email_for_token(token, current_app.config["SECRET_KEY"]), None
    except DomainError as exc:
        return None, exc.message


@bp.get("/unsubscribe/<token>")
@capability_links.private_page
@no_store
def unsubscribe(token: str):
    """The emailed link: checked, then held in this browser's session; the page's address has no token."""
    _email, error = _address(token)
    if error:
        return render_template("public/unsubscribe.html", error=error), 400
    return capability_links.hand_over(UNSUBSCRIBE_LINK, "", token, url_for("public.unsubscribe_page"))


@bp.route("/unsubscribe", methods=["GET", "POST"])
@capability_links.private_page
@no_store
def unsubscribe_page():
    token = capability_links.held(UNSUBSCRIBE_LINK)
    if token is None:
        return render_template("public/unsubscribe.html", error=LINK_NOT_HELD), 400
    if request.method == "GET":
        email, error = _address(token)
        if error:
            capability_links.drop(UNSUBSCRIBE_LINK)
            return render_template("public/unsubscribe.html", error=error), 400
        return render_template("public/unsubscribe.html", email=email, done=False)
    try:  # CSRF checked by CSRFProtect before this view
        user = preferences.unsubscribe(token, secret=current_app.config["SECRET_KEY"], ctx=request_context())
    except DomainError as exc:
        return render_template("public/unsubscribe.html", error=exc.message), exc.status
    return render_template("public/unsubscribe.html", email=user.email, done=True)


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
