"""Facilitator pages for integration after the retreat: the cohort's plan (circles and which
follow-ups are on), the circles with their RSVPs, and attendance at one circle."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from retreat.accounts.models import Role, User
from retreat.blueprints.facilitator import bp
from retreat.cohorts import catalog as cohort_svc
from retreat.cohorts.models import CohortSession, Enrollment, SessionKind
from retreat.core.errors import Conflict, DomainError, NotFound
from retreat.extensions import db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.timeutil import now_utc
from retreat.web.forms import refused
from retreat.web.security import acting_user


def _cohort(cohort_id: int):
    try:
        return cohort_svc.get_cohort(cohort_id)
    except NotFound:
        abort(404)


def _circle(session_id: int) -> CohortSession:
    s = db.session.get(CohortSession, session_id)
    if s is None or s.kind != SessionKind.INTEGRATION_CIRCLE.value:
        abort(404)
    return s


def _facilitators():
    return list(db.session.scalars(select(User).where(User.role.in_([Role.FACILITATOR.value, Role.ADMIN.value]))
                                   .order_by(User.name)))


def _form_values(plan) -> dict:
    return {"circle_weeks": plan.circle_weeks, "circle_weekday": plan.circle_weekday,
            "circle_local_time": plan.circle_local_time.strftime("%H:%M"),
            "circle_duration_minutes": plan.circle_duration_minutes, "circle_location": plan.circle_location,
            "circle_video_url": plan.circle_video_url, "circle_facilitator_id": plan.circle_facilitator_id or "",
            **{k: getattr(plan, k) for k in ip.TOUCHPOINT_KINDS}}


def _render(cohort, plan, values, errors, status=200, version=None):
    circles = ic.all_circles(cohort)
    return render_template(
        "facilitator/integration_plan.html", cohort=cohort, plan=plan, values=values, errors=errors,
        version=version if version is not None else plan.version, weekdays=ip.WEEKDAYS,
        flag_labels=ip.FLAG_LABELS, facilitators=_facilitators(), circles=circles,
        cant=ic.rsvp_counts(circles), touchpoints=ip.touchpoints(cohort), anchor=ip.anchor(cohort),
        place=ic.place_text, now=now_utc()), status


@bp.route("/cohorts/<int:cohort_id>/integration", methods=["GET", "POST"])
def integration_plan(cohort_id: int):
    cohort = _cohort(cohort_id)
    now = now_utc()
    if request.method == "GET":
        if ip.plan_for(cohort) is None:  # cohorts created before plans existed: plan on first visit
            ic.plan_changed(cohort, now)
        plan = ip.ensure_plan(cohort, now)
        return _render(cohort, plan, _form_values(plan), {})
    plan = ip.ensure_plan(cohort, now)
    values = {k: request.form.get(k, "") for k in _form_values(plan)}
    values.update({k: request.form.get(k, "") in ("on", "1", "true") for k in ip.TOUCHPOINT_KINDS})
    try:
        report = ic.update_plan(plan, request.form, expected_version=request.form.get("version"),
                                actor=acting_user(), now=now)
    except Conflict as exc:
        db.session.expire_all()  # show the saved plan, not the one this request loaded
        plan = ip.ensure_plan(cohort, now)
        flash(exc.message, "error")
        return _render(cohort, plan, _form_values(plan), {}, 409)
    except DomainError as exc:
        refused(exc.message, "error")
        return _render(cohort, plan, values, exc.errors, exc.status, version=request.form.get("version"))
    summary = f"Plan saved: {report.summary}." if report.summary else "Plan saved."
    if report.updated:
        summary += f" {report.updated} participant{'s' if report.updated != 1 else ''} sent one update each."
    flash(summary, "success")
    for message in report.messages:
        flash(message, "warning")
    return redirect(url_for("facilitator.integration_plan", cohort_id=cohort.id))


@bp.get("/circles/<int:session_id>")
def circle_detail(session_id: int):
    s = _circle(session_id)
    return render_template("facilitator/integration_circle.html", session=s, cohort=s.cohort,
                           rows=ic.rsvp_rows(s), place=ic.place_text)


@bp.post("/circles/<int:session_id>/attendance/<int:enrollment_id>")
def circle_attendance(session_id: int, enrollment_id: int):
    s = _circle(session_id)
    enr = db.session.get(Enrollment, enrollment_id)
    if enr is None:
        abort(404)
    try:
        cohort_svc.record_attendance(s, enr, status=request.form.get("status", ""), actor=acting_user(),
                                     now=now_utc())
    except NotFound:
        abort(404)
    except DomainError as exc:
        refused(exc.message, "error")
        return redirect(url_for("facilitator.circle_detail", session_id=s.id))
    return redirect(url_for("facilitator.circle_detail", session_id=s.id) + f"#p{enr.id}")
