"""Vital signs on a dosing day: physical ranges (outside them the reading is a typing error, refused
with a field error) and the organisation's thresholds (inside the physical range but worth a flag;
a blood pressure at or above the hold threshold holds the dose until a clinician confirms).

Pure functions: no database, no clock. One definition of each range, read by the form and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from retreat.core.errors import ValidationFailed

# field: (label, low, high, required)
PHYSICAL_RANGES: dict[str, tuple[str, float, float, bool]] = {
    "systolic": ("Systolic blood pressure (mmHg)", 50, 260, True),
    "diastolic": ("Diastolic blood pressure (mmHg)", 30, 160, True),
    "heart_rate": ("Heart rate (beats per minute)", 20, 250, True),
    "spo2": ("SpO2 (%)", 50, 100, True),
    "temperature": ("Temperature (°C)", 30, 43, False),
}
NOTE_MAX = 1000


@dataclass(frozen=True)
class Thresholds:
    hold_systolic: int = 160
    hold_diastolic: int = 100
    hr_high: int = 120
    hr_low: int = 50
    spo2_low: int = 92


def parse_vitals(raw: dict) -> dict:
    """Numbers within their physical range (temperature and note optional), or ValidationFailed
    carrying an error for every bad field at once."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    for field, (label, low, high, required) in PHYSICAL_RANGES.items():
        text = str(raw.get(field) if raw.get(field) is not None else "").strip()
        if not text:
            if required:
                errors[field] = [f"Enter the {label[0].lower() + label[1:]}."]
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            errors[field] = [f"{label}: enter a number."]
            continue
        if not value.is_finite() or not (low <= value <= high):
            errors[field] = [f"{label} must be between {low:g} and {high:g}; check the reading."]
            continue
        out[field] = float(value) if field == "temperature" else int(value.to_integral_value())
    note = str(raw.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        errors["note"] = [f"Keep the note under {NOTE_MAX} characters."]
    elif "\x00" in note:
        errors["note"] = ["The note contains a character that is not allowed."]
    elif note:
        out["note"] = note
    if "systolic" in out and "diastolic" in out and out["diastolic"] >= out["systolic"]:
        errors["diastolic"] = ["Diastolic must be lower than systolic; check the reading."]
    if errors:
        raise ValidationFailed("Check the vital signs.", errors=errors)
    return out


def flags(vitals: dict, t: Thresholds) -> list[str]:
    """What the reading crosses, in words for the board (never sent in emails)."""
    out = []
    if vitals["systolic"] >= t.hold_systolic or vitals["diastolic"] >= t.hold_diastolic:
        out.append(f"Blood pressure {vitals['systolic']}/{vitals['diastolic']} at or above "
                   f"{t.hold_systolic}/{t.hold_diastolic}")
    if vitals["heart_rate"] > t.hr_high:
        out.append(f"Heart rate {vitals['heart_rate']} above {t.hr_high}")
    if vitals["heart_rate"] < t.hr_low:
        out.append(f"Heart rate {vitals['heart_rate']} below {t.hr_low}")
    if vitals["spo2"] < t.spo2_low:
        out.append(f"SpO2 {vitals['spo2']}% below {t.spo2_low}%")
    return out


def holds_dose(vitals: dict, t: Thresholds) -> bool:
    return vitals["systolic"] >= t.hold_systolic or vitals["diastolic"] >= t.hold_diastolic


def in_range(vitals: dict, t: Thresholds) -> bool:
    """Back in range for discharge: no threshold crossed."""
    return not flags(vitals, t)
