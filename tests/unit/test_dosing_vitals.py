"""Vital signs: physical ranges refuse typing errors; the organisation's thresholds flag and hold."""

from __future__ import annotations

import pytest

from retreat.clinical.vitals import Thresholds, flags, holds_dose, in_range, parse_vitals
from retreat.core.errors import ValidationFailed

GOOD = {"systolic": "122", "diastolic": "78", "heart_rate": "72", "spo2": "98"}


def test_a_normal_reading_parses_and_crosses_nothing():
    v = parse_vitals({**GOOD, "temperature": "36.8", "note": "  calm  "})
    assert v == {"systolic": 122, "diastolic": 78, "heart_rate": 72, "spo2": 98, "temperature": 36.8, "note": "calm"}
    assert flags(v, Thresholds()) == [] and not holds_dose(v, Thresholds()) and in_range(v, Thresholds())


@pytest.mark.parametrize("field, value", [
    ("systolic", "49"), ("systolic", "261"), ("diastolic", "29"), ("diastolic", "161"),
    ("heart_rate", "19"), ("heart_rate", "251"), ("spo2", "49"), ("spo2", "101"),
    ("temperature", "29.9"), ("temperature", "43.1"), ("systolic", "abc"), ("spo2", "NaN"),
    ("heart_rate", "Infinity"), ("systolic", ""),
])
def test_outside_the_physical_range_is_a_field_error(field, value):
    with pytest.raises(ValidationFailed) as err:
        parse_vitals({**GOOD, field: value})
    assert list(err.value.errors) == [field]


def test_every_bad_field_is_reported_at_once_and_the_edges_are_accepted():
    with pytest.raises(ValidationFailed) as err:
        parse_vitals({"systolic": "300", "diastolic": "", "heart_rate": "x", "spo2": "100", "note": "n" * 1001})
    assert set(err.value.errors) == {"systolic", "diastolic", "heart_rate", "note"}
    edge = parse_vitals({"systolic": "260", "diastolic": "30", "heart_rate": "250", "spo2": "50",
                         "temperature": "43"})
    assert edge["systolic"] == 260 and edge["temperature"] == 43.0
    with pytest.raises(ValidationFailed, match="vital"):
        parse_vitals({**GOOD, "diastolic": "130", "systolic": "120"})


@pytest.mark.parametrize("reading, held", [((160, 80), True), ((159, 99), False), ((140, 100), True)])
def test_blood_pressure_at_or_above_the_hold_threshold_holds_the_dose(reading, held):
    v = parse_vitals({**GOOD, "systolic": str(reading[0]), "diastolic": str(reading[1])})
    assert holds_dose(v, Thresholds()) is held
    assert bool(flags(v, Thresholds())) is held


def test_heart_rate_and_spo2_thresholds_flag_and_the_organisation_can_move_them():
    v = parse_vitals({**GOOD, "heart_rate": "121", "spo2": "91"})
    assert flags(v, Thresholds()) == ["Heart rate 121 above 120", "SpO2 91% below 92%"]
    assert not holds_dose(v, Thresholds())
    assert flags(parse_vitals({**GOOD, "heart_rate": "49"}), Thresholds()) == ["Heart rate 49 below 50"]
    assert flags(v, Thresholds(hr_high=130, spo2_low=90)) == []
    assert holds_dose(parse_vitals({**GOOD, "systolic": "150"}), Thresholds(hold_systolic=150))
