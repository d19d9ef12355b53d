"""The facilitator's home: what needs them today, one panel per question, each from its domain."""

from flask import render_template, url_for
from flask_login import current_user

from retreat.blueprints.facilitator import bp
from retreat.clinical import safety
from retreat.cohorts import readiness, team
from retreat.consults import agenda
from retreat.integration import followups
from retreat.timeutil import day_window, now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user


@bp.get("/")
@no_store
def dashboard():
    from retreat.blueprints.facilitator.followups import dashboard_context

    viewer, now = acting_user(), now_utc()
    start, end = day_window(now, viewer.tz)
    panels = {
        "sessions": team.sessions_between(viewer, start, end),
        "consults": agenda.booked_between(viewer.id, start, end),
        "safety": safety.unacknowledged(viewer),
        "integration": followups.unacknowledged(viewer),
        "not_ready": readiness.not_ready(viewer, now),  # None until the dosing-day rules register
        "overdue": followups.overdue_checkins(viewer, now),
    }
    return render_template("facilitator/dashboard.html", user=current_user, panels=panels, now=now,
                           kind_labels=followups.KIND_LABELS,
                           alerts_url=url_for("facilitator.safety_alerts"), **dashboard_context())
