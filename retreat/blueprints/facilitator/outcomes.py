"""Cohort outcomes for facilitators: PHQ-9 and GAD-7 in aggregate only (mean total, mean change
from baseline, share with a clinically meaningful improvement, response rate), with nothing shown
for a timepoint with fewer than five responses and no per-participant value anywhere."""

from __future__ import annotations

from flask import abort, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from retreat.accounts.models import Role
from retreat.blueprints.facilitator import bp
from retreat.clinical import outcome_reports
from retreat.cohorts.models import Cohort
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.outcome_charts import line_chart
from retreat.web.security import acting_user, request_context


@bp.get("/outcomes")
@no_store
def outcomes_index():
    cohorts = list(db.session.scalars(select(Cohort).options(selectinload(Cohort.retreat))
                                      .order_by(Cohort.starts_at.desc(), Cohort.id.desc())))
    return render_template("facilitator/outcomes_index.html", cohorts=cohorts,
                           is_facilitator=acting_user().role == Role.FACILITATOR, now=now_utc())


@bp.get("/cohorts/<int:cohort_id>/outcomes")
@no_store
def cohort_outcomes(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None:
        abort(404)
    report = outcome_reports.cohort_aggregate(acting_user(), cohort, ctx=request_context(), now=now_utc())
    labels = [outcome_reports.TIMEPOINT_LABELS[t] for t in outcome_reports.TIMEPOINTS]
    charts = []
    for s in report.series:
        inst = s.instrument
        charts.append({"series": s, "chart": line_chart(
            f"cohort-{cohort.id}-{inst.key}", title=f"{inst.label}: cohort mean total over time", x_labels=labels,
            series=[("Mean total", [c.mean_total if c.shown else None for c in s.cells])], y_max=inst.max_total,
            bands=inst.bands, missing=outcome_reports.SUPPRESSED,
            summary="Lower is better. Timepoints with fewer than 5 responses are not shown.")})
    return render_template("facilitator/cohort_outcomes.html", cohort=cohort, report=report, charts=charts,
                           min_responses=outcome_reports.MIN_RESPONSES, suppressed=outcome_reports.SUPPRESSED,
                           is_facilitator=acting_user().role == Role.FACILITATOR)
