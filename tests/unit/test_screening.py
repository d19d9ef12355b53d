"""Screening rules: PHQ-9 and GAD-7 scoring tables, every listed condition, the safety signal and
answer validation."""

import pytest

from retreat.clinical import screening
from retreat.clinical.screening import FlagKind, ScreeningLevel
from retreat.core.errors import ValidationFailed
from tests.factories_clearance import answers


def items_for(total: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        v = min(3, total)
        out.append(v)
        total -= v
    assert total == 0
    return out


@pytest.mark.parametrize("total,band", [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "moderately severe"), (19, "moderately severe"), (20, "severe"), (27, "severe"),
])
def test_phq9_bands(total, band):
    score = screening.score_phq9(items_for(total, 9))
    assert (score.total, score.band, score.instrument) == (total, band, "PHQ-9")


@pytest.mark.parametrize("total,band", [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "severe"), (21, "severe"),
])
def test_gad7_bands(total, band):
    score = screening.score_gad7(items_for(total, 7))
    assert (score.total, score.band) == (total, band)


@pytest.mark.parametrize("bad", [-1, 4, "2", None, True, 1.5])
def test_out_of_range_items_are_refused(bad):
    items = [0] * 9
    items[2] = bad
    with pytest.raises(ValidationFailed) as exc:
        screening.score_phq9(items)
    assert list(exc.value.errors) == ["phq9_3"]
    with pytest.raises(ValidationFailed):
        screening.score_gad7([0] * 6 + [bad])


def test_wrong_number_of_items_is_refused():
    with pytest.raises(ValidationFailed, match="9 questions"):
        screening.score_phq9([0] * 8)
    with pytest.raises(ValidationFailed, match="7 questions"):
        screening.score_gad7([0] * 9)


def test_item9_positive():
    assert not screening.score_phq9([3] * 8 + [0]).item9_positive
    assert screening.score_phq9([0] * 8 + [1]).item9_positive


def test_no_flags():
    result = screening.screen(screening.clean_answers(answers(), complete=True))
    assert result.level == ScreeningLevel.NONE and result.flags == [] and not result.safety
    summary = result.summary()
    assert summary["level_label"] == "No flags" and summary["phq9"]["total"] == 0


ABSOLUTE = ["ketamine_misuse", "psychosis_or_mania", "schizophrenia", "suicidality", "glaucoma",
            "intracranial_pressure", "pregnant_or_nursing"]
CLEARANCE = ["uncontrolled_hypertension", "heart_failure", "copd", "hyperthyroidism"]


def test_the_checklist_is_exactly_the_listed_conditions():
    assert [c.key for c in screening.CONDITIONS if c.kind == FlagKind.ABSOLUTE] == ABSOLUTE
    assert [c.key for c in screening.CONDITIONS if c.kind == FlagKind.CLEARANCE_REQUIRED] == CLEARANCE


@pytest.mark.parametrize("key", ABSOLUTE)
def test_each_absolute_contraindication(key):
    result = screening.screen(screening.clean_answers(answers(**{key: True}), complete=True))
    assert result.level == ScreeningLevel.ABSOLUTE
    assert [f.key for f in result.absolute] == [key] and result.clearance_required == []
    assert result.summary()["absolute"][0]["label"] == screening.CONDITIONS_BY_KEY[key].label
    assert result.safety == (key == "suicidality")


@pytest.mark.parametrize("key", CLEARANCE)
def test_each_condition_needing_clearance(key):
    result = screening.screen(screening.clean_answers(answers(**{key: "y"}), complete=True))
    assert result.level == ScreeningLevel.CLEARANCE_REQUIRED
    assert [f.key for f in result.clearance_required] == [key] and result.absolute == []
    assert not result.safety


def test_absolute_wins_over_clearance_required():
    result = screening.screen(screening.clean_answers(answers(copd=True, glaucoma=True), complete=True))
    assert result.level == ScreeningLevel.ABSOLUTE
    assert {f.key for f in result.flags} == {"copd", "glaucoma"}


def test_phq9_item9_is_a_safety_signal_and_a_flag():
    result = screening.screen(screening.clean_answers(answers(phq9_9=1), complete=True))
    assert result.safety and result.level == ScreeningLevel.CLEARANCE_REQUIRED
    assert [f.key for f in result.flags] == ["phq9_item9"]
    assert screening.safety_signal({"phq9_9": 2}) and screening.safety_signal({"suicidality": True})
    assert not screening.safety_signal({"phq9_9": 0}) and not screening.safety_signal({})


def test_severe_depression_and_high_blood_pressure_need_clearance():
    severe = screening.screen(screening.clean_answers(answers(**{f"phq9_{i}": 3 for i in range(1, 8)}),
                                                      complete=True))
    assert [f.key for f in severe.flags] == ["phq9_severe"]
    for bp, flagged in [((140, 80), True), ((120, 90), True), ((139, 89), False)]:
        result = screening.screen(screening.clean_answers(answers(bp_systolic=bp[0], bp_diastolic=bp[1]),
                                                          complete=True))
        assert ("bp_elevated" in [f.key for f in result.flags]) == flagged
    unknown = screening.screen(screening.clean_answers(answers(bp_systolic=None, bp_diastolic=None), complete=True))
    assert unknown.flags == []


def test_submitting_needs_every_required_answer():
    with pytest.raises(ValidationFailed) as exc:
        screening.clean_answers({}, complete=True)
    required = {q.key for q in screening.TEXT_QUESTIONS if q.required} | {"height_cm", "weight_kg"} | set(
        screening.PHQ9_KEYS) | set(screening.GAD7_KEYS)
    assert set(exc.value.errors) == required
    assert "current_care" not in exc.value.errors and "bp_systolic" not in exc.value.errors


def test_a_draft_may_be_incomplete_but_not_wrong():
    draft = screening.clean_answers({"medications": "  sertraline 50 mg daily  ", "phq9_1": "2"}, complete=False)
    assert draft["medications"] == "sertraline 50 mg daily" and draft["phq9_1"] == 2 and draft["phq9_2"] is None
    for bad, field in [({"phq9_1": "7"}, "phq9_1"), ({"gad7_2": "x"}, "gad7_2"), ({"height_cm": "12"}, "height_cm"),
                       ({"weight_kg": "seventy"}, "weight_kg"), ({"bp_systolic": "120"}, "bp_diastolic"),
                       ({"allergies": "x" * 4001}, "allergies")]:
        with pytest.raises(ValidationFailed) as exc:
            screening.clean_answers(bad, complete=False)
        assert field in exc.value.errors, bad
