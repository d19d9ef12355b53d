"""Facilitators: safety alerts ("safety review needed", no details) and each cohort's clearance
readiness: status and the conditions a provider marked as shareable with the team, nothing else."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from retreat.blueprints.facilitator import bp
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance_status, safety
from retreat.cohorts import enrollment as pipeline
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import NotFound
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.clinical import read_or_404
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object


class AcknowledgeForm(FlaskForm):
    pass


@bp.get("/safety-alerts")
@no_store
def safety_alerts():
    recent = safety.recent_alerts(acting_user())
    return render_template("facilitator/clearance_alerts.html", alerts=recent, form=AcknowledgeForm())


@bp.post("/safety-alerts/<int:alert_id>/acknowledge")
@no_store
def acknowledge_safety_alert(alert_id: int):
    try:
        alert = safety.alert_for(alert_id, acting_user())
    except NotFound:
        abort(404)
    if AcknowledgeForm().validate_on_submit():
        safety.acknowledge_alert(alert, acting_user(), now=now_utc(), ctx=request_context())
        flash("Alert acknowledged. Thank you for following up.", "success")
    return redirect(url_for("facilitator.safety_alerts"))


@bp.get("/clearance")
@no_store
def clearance_overview():
    cohorts = list(db.session.scalars(select(Cohort).order_by(Cohort.starts_at)))
    return render_template("facilitator/clearance_cohorts.html", cohorts=cohorts,
                           open_alerts=len(safety.open_alerts(viewer=acting_user())))


@bp.get("/cohorts/<int:cohort_id>/clearance")
@no_store
def cohort_clearance(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    require_object(cohort is not None)
    now = now_utc()
    enrollments = list(db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)
                                          .order_by(Enrollment.id)))
    shared = read_or_404(clinical_access.shareable_conditions, acting_user(), enrollments, ctx=request_context(),
                         now=now)
    rows = [{"enrollment": e, "status": clearance_status.status_of(e, now), "shared": shared.get(e.id),
             "pipeline": pipeline.label(e.status)} for e in enrollments]
    return render_template("facilitator/clearance_cohort.html", cohort=cohort, rows=rows)
