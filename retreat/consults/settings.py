"""The limits and defaults of a facilitator's consult settings, written once.

``SETTINGS`` is the one definition of each number: the model's columns and CheckConstraints
(``retreat.consults.models``), the service's range checks (``check_ranges``), the facilitator's
settings form (its validators and defaults) and the slot engine's ``Schedule`` defaults all read
it, and ``tests/unit/test_consult_settings_limits.py`` shows that they agree.

The numbers are the ones the database already enforces (migration 0001's CheckConstraints), so
no migration follows from this table; change a number here only together with a migration.
``daily_cap`` is optional (empty: no limit); the database only checks that a cap is at least 1,
the service and the form also keep it at most 100.

This module imports nothing of the app: the model reads it at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Limit:
    """One integer setting: its bounds (inclusive), default, label and CheckConstraint name."""

    field: str
    low: int
    high: int
    default: int | None
    label: str
    constraint: str
    nullable: bool = False

    def accepts(self, value) -> bool:
        if value is None:
            return self.nullable
        return isinstance(value, int) and self.low <= value <= self.high

    def check_sql(self) -> str:
        """The database's check of this column (the optional cap checks its lower bound only)."""
        if self.nullable:
            return f"{self.field} IS NULL OR {self.field} >= {self.low}"
        return f"{self.field} BETWEEN {self.low} AND {self.high}"

    def message(self) -> str:
        if self.nullable:
            return f"{self.label} must be between {self.low} and {self.high}, or empty for no limit."
        return f"{self.label} must be between {self.low} and {self.high}."


SETTINGS: dict[str, Limit] = {limit.field: limit for limit in (
    Limit("duration_minutes", 10, 240, 30, "Consult length", "duration_range"),
    Limit("buffer_before_minutes", 0, 240, 0, "Buffer before", "buffer_before_range"),
    Limit("buffer_after_minutes", 0, 240, 10, "Buffer after", "buffer_after_range"),
    Limit("min_notice_minutes", 0, 43200, 12 * 60, "Minimum notice", "notice_range"),
    Limit("horizon_days", 1, 365, 60, "Booking horizon", "horizon_range"),
    Limit("daily_cap", 1, 100, None, "Daily limit", "daily_cap_positive", nullable=True),
    Limit("slot_interval_minutes", 5, 240, 30, "Start times every", "interval_range"),
    Limit("change_cutoff_hours", 0, 168, 24, "Changes allowed until", "cutoff_range"),
)}
ACCEPTING_BOOKINGS_DEFAULT = True

# Lengths of the free-text fields (the model's String columns and every form and API schema).
MAX_LEN = {"name": 200, "email": 254, "phone": 40, "reason": 2000, "heard_from": 200,
           "recommended_cohort": 200, "outcome_notes": 5000, "video_link": 500, "note": 200}


def default(field: str):
    return SETTINGS[field].default


def defaults() -> dict[str, int | bool | None]:
    """Every setting's default (what a new settings row and an untouched form start with)."""
    return {**{f: limit.default for f, limit in SETTINGS.items()}, "accepting_bookings": ACCEPTING_BOOKINGS_DEFAULT}


def check_ranges(values: dict) -> dict[str, list[str]]:
    """Field errors for the values outside their limits (none for fields not given)."""
    return {f: [SETTINGS[f].message()] for f, v in values.items() if f in SETTINGS and not SETTINGS[f].accepts(v)}


def as_duration(field: str) -> timedelta:
    """A default as a duration, for the slot engine (fields in minutes, hours or days)."""
    value = SETTINGS[field].default
    if field.endswith("_days"):
        return timedelta(days=value)
    if field.endswith("_hours"):
        return timedelta(hours=value)
    return timedelta(minutes=value)
