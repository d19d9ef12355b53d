"""Outcome measures: the intake becomes the baseline; a timepoint is recorded once; bad answers
change nothing; the scores are encrypted at rest."""

import pytest
from sqlalchemy import select, text

from retreat.clinical import outcomes
from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from tests import factories_clearance as fcl
from tests.factories_cohorts import NOW


@pytest.fixture()
def s(db):
    return fcl.setup(now=NOW)


def rows(enr_id):
    return list(_db.session.scalars(select(OutcomeMeasure).where(OutcomeMeasure.enrollment_id == enr_id)
                                    .order_by(OutcomeMeasure.instrument)))


def test_submitting_the_intake_records_the_baseline_encrypted(db, s):
    fcl.submit(s, phq9_1=2, gad7_1=3)
    found = rows(s.enrollment.id)
    assert [(r.instrument, r.timepoint, r.source) for r in found] == [
        ("gad7", "baseline", "intake"), ("phq9", "baseline", "intake")]
    phq = outcomes.open_scores(found[1])
    assert phq["items"][0] == 2 and phq["total"] == sum(phq["items"])
    raw = _db.session.execute(text("SELECT answers_enc FROM outcome_measures")).scalars().all()
    assert all('"total"' not in value for value in raw)


def test_a_timepoint_is_recorded_once_and_the_first_answers_are_kept(db, s):
    first = outcomes.record(s.enrollment, "phq9", "post", [1] * 9, now=NOW)
    with pytest.raises(outcomes.AlreadyRecorded):
        outcomes.record(s.enrollment, "phq9", "post", [3] * 9, now=NOW)
    assert outcomes.open_scores(first)["total"] == 9
    assert len(rows(s.enrollment.id)) == 1


@pytest.mark.parametrize("instrument,items", [
    ("phq9", [1] * 8), ("phq9", [4] + [0] * 8), ("gad7", [-1] + [0] * 6), ("gad7", ["x"] * 7), ("bdi", [0] * 9)])
def test_bad_answers_change_nothing(db, s, instrument, items):
    with pytest.raises(ValidationFailed):
        outcomes.record(s.enrollment, instrument, "post", items, now=NOW)
    assert rows(s.enrollment.id) == []


def test_unknown_timepoint_is_refused(db, s):
    with pytest.raises(ValidationFailed):
        outcomes.record(s.enrollment, "gad7", "month_2", [0] * 7, now=NOW)
