"""One definition of the consult setting limits and defaults (retreat.consults.settings.SETTINGS):
the model's CheckConstraints and column defaults, the service's range checks, the facilitator's
settings form and the slot engine's Schedule all read it, so they cannot drift apart again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from wtforms.validators import NumberRange

from retreat.consults.availability import Schedule
from retreat.consults.models import ConsultSettings
from retreat.consults.settings import SETTINGS, check_ranges, defaults


def test_the_model_checks_and_defaults_are_the_table():
    named = {limit.constraint for limit in SETTINGS.values()}
    checks = {str(c.name).removeprefix("ck_consult_settings_"): str(c.sqltext)
              for c in ConsultSettings.__table__.constraints if hasattr(c, "sqltext")}
    assert set(checks) == named
    # The numbers the database has had since migration 0001 (no migration follows from the table).
    assert checks == {
        "duration_range": "duration_minutes BETWEEN 10 AND 240",
        "buffer_before_range": "buffer_before_minutes BETWEEN 0 AND 240",
        "buffer_after_range": "buffer_after_minutes BETWEEN 0 AND 240",
        "notice_range": "min_notice_minutes BETWEEN 0 AND 43200",
        "horizon_range": "horizon_days BETWEEN 1 AND 365",
        "daily_cap_positive": "daily_cap IS NULL OR daily_cap >= 1",
        "interval_range": "slot_interval_minutes BETWEEN 5 AND 240",
        "cutoff_range": "change_cutoff_hours BETWEEN 0 AND 168",
    }
    for field, value in defaults().items():
        column_default = ConsultSettings.__table__.c[field].default
        assert (column_default.arg if column_default is not None else None) == value, field


@pytest.mark.parametrize("field", sorted(SETTINGS))
def test_the_service_accepts_exactly_the_limits(field):
    limit = SETTINGS[field]
    assert check_ranges({field: limit.low}) == {} and check_ranges({field: limit.high}) == {}
    assert field in check_ranges({field: limit.low - 1}) and field in check_ranges({field: limit.high + 1})


def test_the_form_validators_and_defaults_are_the_models(app):
    from retreat.blueprints.facilitator.consults import SettingsForm

    with app.test_request_context():
        form = SettingsForm(prefix="s", meta={"csrf": False})
        for field, limit in SETTINGS.items():
            name, scale = ("min_notice_hours", 60) if field == "min_notice_minutes" else (field, 1)
            bounds = [v for v in getattr(form, name).validators if isinstance(v, NumberRange)]
            assert [(b.min, b.max) for b in bounds] == [(limit.low // scale, limit.high // scale)], field
            expected = limit.default // scale if limit.default is not None else None
            assert getattr(form, name).data == expected, field
        assert form.accepting_bookings.data is defaults()["accepting_bookings"]
        assert form.buffer_after_minutes.data == ConsultSettings.__table__.c.buffer_after_minutes.default.arg


def test_the_slot_engine_starts_from_the_same_defaults():
    s = Schedule(1, "UTC")
    d = defaults()
    assert (s.duration, s.buffer_before, s.buffer_after, s.min_notice, s.horizon, s.daily_cap, s.interval) == (
        timedelta(minutes=d["duration_minutes"]), timedelta(minutes=d["buffer_before_minutes"]),
        timedelta(minutes=d["buffer_after_minutes"]), timedelta(minutes=d["min_notice_minutes"]),
        timedelta(days=d["horizon_days"]), d["daily_cap"], timedelta(minutes=d["slot_interval_minutes"]))
