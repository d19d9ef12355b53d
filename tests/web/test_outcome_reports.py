"""Outcome charts: the participant's own, the referred provider's (other organisations: 404), and
the facilitators' cohort aggregate (hand-computed figures, suppression below 5 responses, flat
query counts). Rows are created through ``retreat.clinical.outcomes.record``."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from retreat.clinical import outcome_reports, outcomes, screening
from retreat.extensions import db as _db
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from retreat.web.outcome_charts import line_chart
from tests import factories
from tests import factories_clearance as fcl
from tests import factories_cohorts as fc
from tests.conftest import signed_in

COUNTS = {"phq9": 9, "gad7": 7}


def items_for(instrument: str, total: int) -> list[int]:
    """Answers (0-3 each) adding up to ``total``."""
    n = COUNTS[instrument]
    assert 0 <= total <= 3 * n
    out = []
    for _ in range(n):
        v = min(3, total)
        out.append(v)
        total -= v
    return out


def put(enr, instrument, timepoint, total):
    return outcomes.record(enr, instrument, timepoint, items_for(instrument, total), now=now_utc())


def ended_setup():
    """A cohort that ended four months ago (every survey is due) and whose participants attended."""
    return ended_cohort(now_utc() - timedelta(days=130))


def ended_cohort(start, days=6):
    return SimpleNamespace(cohort=fc.cohort(starts_at=start, ends_at=start + timedelta(days=days)))


def completed(s, n) -> list:
    out = []
    for _ in range(n):
        e = fc.bare_enrollment(s.cohort)
        e.status = "completed"
        out.append(e)
    _db.session.flush()
    return out


def events(action):
    return list(_db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --------------------------------------------------------------------------------------------
# One person's chart
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def person(db):
    s = fcl.setup()
    fcl.submit(s, **{f"phq9_{i}": 2 for i in range(1, 10)}, **{f"gad7_{i}": 2 for i in range(1, 8)})  # 18, 14
    put(s.enrollment, "phq9", "post", 9)
    put(s.enrollment, "gad7", "post", 6)
    put(s.enrollment, "phq9", "month_1", 4)
    db.session.commit()
    return s


def test_participant_sees_their_charts_with_bands_and_a_data_table(app, db, person):
    r = signed_in(app, person.participant).get("/me/outcomes")
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert 'role="img"' in body and "<title id=" in body and "<desc id=" in body
    assert "PHQ-9 (depression): total score over time" in body
    assert "Baseline (intake) 18, Right after 9, 1 month 4" in body  # the description says the values
    assert "moderately severe (15–19)" in body and "severe (15–21)" in body  # severity bands, both scales
    assert "<td>18</td><td>9</td><td>4</td><td>not answered</td>" in body  # the table alternative
    ev = events("outcomes.read")
    assert len(ev) == 1 and ev[0].actor_id == person.participant.id and ev[0].details["basis"] == "owner"


def test_participant_without_scores_gets_an_empty_state(app, db):
    r = signed_in(app, factories.user("participant", password=None)).get("/me/outcomes")
    assert r.status_code == 200 and "No questionnaire answers yet" in r.get_data(as_text=True)


def test_referred_provider_sees_the_chart_and_each_read_is_audited(app, db, person):
    prov = signed_in(app, person.provider)
    listing = prov.get("/provider/outcomes").get_data(as_text=True)
    assert person.participant.name in listing
    r = prov.get(f"/provider/outcomes/{person.enrollment.id}")
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "GAD-7 (anxiety): total score over time" in body
    assert "<td>9</td><td>mild</td><td>-9</td>" in body  # post PHQ-9: total, severity, change from 18
    prov.get(f"/provider/outcomes/{person.enrollment.id}")
    reads = [e for e in events("outcomes.read") if e.actor_id == person.provider.id]
    assert len(reads) == 2 and reads[0].details == {"participant_id": person.participant.id, "basis": "provider",
                                                    "measures": 5}


def test_another_organisations_provider_gets_404_and_the_refusal_is_audited(app, db, person):
    stranger = factories.user("provider", password=None)  # a member of another organisation
    db.session.commit()
    c = signed_in(app, stranger)
    r = c.get(f"/provider/outcomes/{person.enrollment.id}")
    assert r.status_code == 404 and person.participant.name not in r.get_data(as_text=True)
    assert person.participant.name not in c.get("/provider/outcomes").get_data(as_text=True)
    assert c.get("/provider/outcomes/999999").status_code == 404
    denied = events("clinical.denied")
    assert [d.object_id for d in denied] == [str(person.enrollment.id), "999999"]
    assert not events("outcomes.read")


@pytest.mark.parametrize("role", ["facilitator", "finance", "participant"])
def test_nobody_else_opens_a_persons_chart(app, db, person, role):
    c = signed_in(app, factories.user(role, password=None))
    r = c.get(f"/provider/outcomes/{person.enrollment.id}")
    assert r.status_code == 403
    if role == "participant":  # their own page shows only their own (empty) scores
        assert person.participant.name not in c.get("/me/outcomes").get_data(as_text=True)


# --------------------------------------------------------------------------------------------
# The cohort aggregate
# --------------------------------------------------------------------------------------------

# Hand-computed fixture: six participants A-F who attended a cohort that ended 4 months ago.
PHQ = {"baseline": [20, 15, 12, 9, 8, 18], "post": [12, 11, 12, 4, 9, None], "month_1": [10, 10, 10, 10, None, None]}
GAD = {"baseline": [15, 10, 9, 7, 12, None], "post": [11, 6, 9, 3, 12, 5]}


@pytest.fixture()
def cohort6(db):
    s = ended_setup()
    people = completed(s, 6)
    for data, inst in ((PHQ, "phq9"), (GAD, "gad7")):
        for tp, totals in data.items():
            for enr, total in zip(people, totals, strict=True):
                if total is not None:
                    put(enr, inst, tp, total)
    db.session.commit()
    s.people = people
    return s


def _cells(report, inst):
    series = next(x for x in report.series if x.instrument.key == inst)
    return {c.timepoint: c for c in series.cells}


def test_means_changes_and_improvement_shares_match_the_hand_computed_figures(app, db, cohort6):
    fac = factories.user("facilitator", password=None)
    report = outcome_reports.cohort_aggregate(fac, cohort6.cohort, ctx=None, now=now_utc())
    assert report.invited == 6
    phq = _cells(report, "phq9")
    # baseline: (20+15+12+9+8+18)/6 = 13.67
    assert (phq["baseline"].shown, phq["baseline"].mean_total, phq["baseline"].answered) == (True, 13.7, 6)
    # post: 5 answered of 6; mean (12+11+12+4+9)/5 = 9.6; changes -8,-4,0,-5,+1 -> -3.2;
    # a drop of >= 5 points: A (8) and D (exactly 5) -> 2 of 5
    p = phq["post"]
    assert (p.answered, p.invited, p.mean_total, p.paired, p.mean_change) == (5, 6, 9.6, 5, -3.2)
    assert p.improved_share == pytest.approx(0.4)
    # month 1: 4 responses -> nothing computed
    m1 = phq["month_1"]
    assert (m1.shown, m1.mean_total, m1.mean_change, m1.improved_share, m1.answered) == (False, None, None, None, 4)
    gad = _cells(report, "gad7")
    # post: 6 answered; mean (11+6+9+3+12+5)/6 = 7.67; paired with a baseline: A-E (F has none):
    # changes -4,-4,0,-4,0 -> -2.4; a drop of >= 4 points: A, B, D -> 3 of 5
    g = gad["post"]
    assert (g.answered, g.mean_total, g.paired, g.mean_change) == (6, 7.7, 5, -2.4)
    assert g.improved_share == pytest.approx(0.6)
    assert (gad["baseline"].shown, gad["baseline"].mean_total) == (True, 10.6)
    assert events("outcomes.aggregate_read")[0].details["shown"] == [
        "gad7:baseline", "gad7:post", "phq9:baseline", "phq9:post"]


def test_the_facilitator_page_states_definitions_and_never_identifies_anyone(app, db, cohort6):
    fac = signed_in(app, factories.user("facilitator", password=None))
    r = fac.get(f"/facilitator/cohorts/{cohort6.cohort.id}/outcomes")
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "a total at least 5 points lower" in body and "a total at least 4 points lower" in body
    assert "<td>5 of 6 (83%)</td>" in body and "<td>9.6</td>" in body and "-3.2 (5 people)" in body
    assert "<td>40%</td>" in body and "<td>60%</td>" in body
    assert "fewer than 5 responses: not shown" in body
    assert 'role="img"' in body and "Right after 9.6" in body
    for enr in cohort6.people:
        assert enr.participant.name not in body and enr.participant.email not in body


def test_four_responses_are_hidden_and_five_are_shown(app, db):
    s = ended_setup()
    people = completed(s, 5)
    for enr, total in zip(people[:4], [3, 7, 11, 19], strict=True):
        put(enr, "phq9", "month_3", total)
    db.session.commit()
    fac = signed_in(app, factories.user("facilitator", password=None))
    body = fac.get(f"/facilitator/cohorts/{s.cohort.id}/outcomes").get_data(as_text=True)
    row = body.split("<th scope=\"row\">3 months</th>")[1].split("</tr>")[0]
    assert "fewer than 5 responses: not shown" in row and "(5 invited)" in row
    assert "10.0" not in body and "4 of 5" not in body  # neither the mean (40/4) nor the count
    report = outcome_reports.cohort_aggregate(fac.user, s.cohort, ctx=None, now=now_utc())
    assert _cells(report, "phq9")["month_3"].mean_total is None
    put(people[4], "phq9", "month_3", 5)
    db.session.commit()
    body = fac.get(f"/facilitator/cohorts/{s.cohort.id}/outcomes").get_data(as_text=True)
    row = body.split("<th scope=\"row\">3 months</th>")[1].split("</tr>")[0]
    assert "<td>5 of 5 (100%)</td>" in row and "<td>9.0</td>" in row  # (3+7+11+19+5)/5
    assert "fewer than 5 people with a baseline" in row  # no baselines: no change shown


def test_a_survey_not_yet_due_is_not_counted_as_missing(app, db):
    s = ended_cohort(now_utc() - timedelta(days=10))
    completed(s, 6)
    report = outcome_reports.cohort_aggregate(factories.user("facilitator", password=None), s.cohort, ctx=None,
                                              now=now_utc())
    cells = _cells(report, "phq9")
    assert cells["post"].due and cells["post"].invited == 6
    assert not cells["month_1"].due and cells["month_1"].invited == 0
    assert not cells["month_3"].due


def _statements(fn) -> int:
    seen = []
    _db.session.flush()  # pending writes of earlier calls are not this call's queries

    def log(*args):
        seen.append(args[2])

    event.listen(_db.engine, "before_cursor_execute", log)
    try:
        fn()
    finally:
        event.remove(_db.engine, "before_cursor_execute", log)
    return len(seen)


def test_aggregate_query_count_is_flat_from_10_to_1000_rows(app, db):
    def cohort_with(rows: int):
        s = ended_setup()
        people = completed(s, rows // 4)
        for enr in people:
            for i, tp in enumerate(outcome_reports.TIMEPOINTS):
                put(enr, "phq9", tp, (enr.id + i) % 28)
        _db.session.flush()
        _db.session.expire_all()
        return s

    fac = factories.user("facilitator", password=None)
    small = cohort_with(12)
    large = cohort_with(1000)
    assert len(_db.session.scalars(select(outcome_reports.OutcomeMeasure.id).where(
        outcome_reports.OutcomeMeasure.cohort_id == large.cohort.id)).all()) == 1000
    for c in (small, large):
        assert fac.email and c.cohort.ends_at  # loaded, so that only the report's own queries are counted
    counts = [_statements(lambda c=c: outcome_reports.cohort_aggregate(fac, c.cohort, ctx=None, now=now_utc()))
              for c in (small, large)]
    assert counts[0] == counts[1] <= 3, counts
    client = signed_in(app, fac)
    _db.session.commit()
    for c in (small, large):
        assert client.get(f"/facilitator/cohorts/{c.cohort.id}/outcomes").status_code == 200  # warm
    pages = [_statements(lambda c=c: client.get(f"/facilitator/cohorts/{c.cohort.id}/outcomes")) for c in (small, large)]
    assert pages[0] == pages[1], pages


# --------------------------------------------------------------------------------------------
# The chart helper
# --------------------------------------------------------------------------------------------


def test_chart_breaks_the_line_at_missing_values_and_draws_bands_to_scale():
    chart = line_chart("t", title="T", x_labels=["a", "b", "c", "d"], series=[("S", [10, None, 5, 0])], y_max=27,
                       bands=screening.PHQ9_BANDS)
    s = chart.series[0]
    assert len(s.points) == 3 and len(s.segments) == 1  # c-d joined; a alone is a dot
    assert [b.label for b in chart.bands] == ["minimal", "mild", "moderate", "moderately severe", "severe"]
    assert (chart.bands[0].low, chart.bands[0].high, chart.bands[-1].high) == (0, 4, 27)
    assert chart.bands[-1].y == chart.top and chart.bands[0].y + chart.bands[0].height == chart.bottom
    assert chart.table_rows == [("S", ["10", "not answered", "5", "0"])]
    assert "S: a 10, c 5, d 0" in chart.desc
