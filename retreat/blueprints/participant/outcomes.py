"""The participant's own PHQ-9 and GAD-7 scores over time, as charts with severity bands."""

from __future__ import annotations

from flask import render_template

from retreat.blueprints.participant import bp
from retreat.clinical import outcome_reports
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.outcome_charts import line_chart
from retreat.web.security import acting_user, request_context


def person_charts(person: outcome_reports.PersonOutcomes, prefix: str) -> list:
    """One chart per questionnaire of one enrollment (shared with the provider's page)."""
    labels = [outcome_reports.TIMEPOINT_LABELS[t] for t in outcome_reports.TIMEPOINTS]
    charts = []
    for s in person.series:
        inst = s.instrument
        charts.append({"series": s, "chart": line_chart(
            f"{prefix}-{person.enrollment.id}-{inst.key}", title=f"{inst.label}: total score over time",
            x_labels=labels, series=[("Total", [p.total for p in s.points])], y_max=inst.max_total,
            bands=inst.bands, summary="Lower is better.")})
    return charts


@bp.get("/outcomes")
@no_store
def outcomes():
    user = acting_user()
    people = outcome_reports.participant_overview(user, ctx=request_context(), now=now_utc())
    return render_template("participant/outcomes.html", people=people,
                           charts={p.enrollment.id: person_charts(p, "mine") for p in people},
                           instruments=outcome_reports.INSTRUMENTS.values())
