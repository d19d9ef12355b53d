"""``GET /widget.js`` and ``GET /widget/consult``: no cookie, no session, no form post (the page's
script calls the public consult API, which applies the booking rule, its limits and emails)."""

from __future__ import annotations

from flask import current_app, render_template, request, send_from_directory, url_for

from retreat.blueprints.widget import bp
from retreat.consults import publishing
from retreat.consults import slots as free_times
from retreat.timeutil import is_valid_zone
from retreat.web import embedding
from retreat.web.forms import zone_options

SCRIPT_CACHE_SECONDS = 300
WIDGET_DAYS = 7  # one page of days at a time


@bp.get("/widget.js")
def script():
    """The embed script: inserts the iframe after itself and follows its height (postMessage)."""
    response = send_from_directory(current_app.static_folder, "js/widget_embed.js", mimetype="text/javascript",
                                   max_age=SCRIPT_CACHE_SECONDS)
    response.headers["Cache-Control"] = f"public, max-age={SCRIPT_CACHE_SECONDS}"
    return response


@bp.get("/widget/consult")
def consult():
    """Free consult times in the visitor's zone (detected by the browser, or chosen), then a short
    booking form and the confirmation, all in the frame."""
    host = request.args.get("origin", "")
    host = host if host.lower() in embedding.allowed_origins() else ""  # where the height is posted
    settings = publishing.settings_of(free_times.bookable_facilitators())
    practice_tz = next((s.tz for s in settings.values() if is_valid_zone(s.tz)), "UTC")
    tz = request.args.get("tz") or ""
    return render_template("widget/consult.html", zones=zone_options([practice_tz]), host_origin=host,
                           tz=tz if is_valid_zone(tz) else practice_tz, days=WIDGET_DAYS,
                           max_days=free_times.MAX_RANGE_DAYS,
                           slots_url=url_for("api_consultations.slots"), book_url=url_for("api_consultations.create"))
