"""The participant's integration circles: what is coming up, the place or link, a calendar file,
and "I'll be there" / "I can't make it" (changeable until the circle ends)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from retreat.blueprints.participant import bp
from retreat.core.errors import DomainError, NotFound
from retreat.integration import circles as ic
from retreat.messaging.ics import ics_response
from retreat.timeutil import now_utc
from retreat.web.forms import refused
from retreat.web.security import acting_user


@bp.get("/circles")
def circles():
    return render_template("participant/circles.html", circles=ic.upcoming_circles(acting_user(), now_utc()),
                           place=ic.place_text)


@bp.post("/circles/<int:session_id>/rsvp")
def circle_rsvp(session_id: int):
    try:
        row = ic.set_rsvp(acting_user(), session_id, status=request.form.get("status", ""),
                          note=request.form.get("note", ""), now=now_utc())
    except NotFound:
        abort(404)
    except DomainError as exc:
        refused(exc.message, "error")
        return render_template("participant/circles.html", circles=ic.upcoming_circles(acting_user(), now_utc()),
                               place=ic.place_text), exc.status
    flash("Thanks: we'll see you there." if row.status == "going"
          else "Thanks for letting us know. You won't get reminders for this circle.", "success")
    return redirect(url_for("participant.circles") + f"#circle-{session_id}")


@bp.get("/circles/<int:session_id>.ics")
def circle_ics(session_id: int):
    try:
        s, enr = ic.participant_circle(acting_user(), session_id)
    except NotFound:
        abort(404)
    return ics_response(ic.circle_ics(s, enr), filename=f"integration-circle-{s.id}.ics")
