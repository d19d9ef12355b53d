"""Demo data: a completed Summer cohort with answered check-ins and surveys; idempotent."""

from sqlalchemy import func, select

from retreat.cli import demo
from retreat.cli.demo_followups import SUMMER_COHORT
from retreat.clinical import outcome_reports
from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.cohorts.models import Cohort, Enrollment
from retreat.integration import followups
from retreat.integration.followup_models import CheckInResponse
from retreat.models import Role
from tests import factories
from tests.factories_cohorts import NOW


def test_the_summer_cohort_has_check_ins_and_outcomes_for_the_charts(db):
    demo.seed(online=False, now=NOW)
    demo.seed(online=False, now=NOW)  # idempotent
    (summer,) = db.session.scalars(select(Cohort).where(Cohort.title == SUMMER_COHORT)).all()
    assert summer.status == "completed"
    enrolled = db.session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.cohort_id == summer.id))
    assert enrolled >= 8
    assert db.session.scalar(select(func.count()).select_from(CheckInResponse)) >= 2 * enrolled - 2
    per_timepoint = dict(db.session.execute(
        select(OutcomeMeasure.timepoint, func.count()).where(OutcomeMeasure.cohort_id == summer.id,
                                                             OutcomeMeasure.instrument == "phq9")
        .group_by(OutcomeMeasure.timepoint)).all())
    assert set(per_timepoint) == {"baseline", "post", "month_1", "month_3"}
    assert min(per_timepoint.values()) >= 5  # enough responses for the facilitators' aggregate

    facilitator = factories.user(Role.FACILITATOR, password=None)
    agg = outcome_reports.cohort_aggregate(facilitator, summer, ctx=None, now=NOW)
    phq = next(s for s in agg.series if s.instrument.key == "phq9")
    shown = {c.timepoint: c for c in phq.cells if c.shown}
    assert {"baseline", "post", "month_1", "month_3"} <= set(shown)
    assert shown["month_3"].mean_total < shown["baseline"].mean_total  # the chart shows improvement

    rates = {r.cohort.title: r for r in followups.response_rates()}
    assert 0 < rates[SUMMER_COHORT].percent < 100
    assert [a.reason for a in followups.open_alerts()] == ["no_response_72h"]
