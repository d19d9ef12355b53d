"""Screening rules: the intake questions, PHQ-9 and GAD-7 scoring, contraindication flags and the
referral summary the partner provider reads. Everything a rule decides lives here, in one place.

    absolute contraindication   -> flagged; the provider must review (clearing needs a rationale)
    needs explicit clearance    -> flagged for the provider's attention
    no flags                    -> routine review

A positive PHQ-9 item 9 (thoughts of self-harm) or reported active suicidal ideation is a
*safety* signal: the participant sees crisis resources at once and the team is alerted
(``retreat.clinical.clearance``). Pure functions, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from retreat.clinical.models import ScreeningLevel
from retreat.core.errors import ValidationFailed


class FlagKind(StrEnum):
    ABSOLUTE = "absolute"
    CLEARANCE_REQUIRED = "clearance_required"


LEVEL_LABELS = {
    ScreeningLevel.NONE: "No flags",
    ScreeningLevel.CLEARANCE_REQUIRED: "Needs explicit medical clearance",
    ScreeningLevel.ABSOLUTE: "Absolute contraindication — review required",
}


@dataclass(frozen=True)
class Condition:
    key: str
    label: str
    kind: FlagKind


# The contraindication checklist, in the order the participant sees it.
CONDITIONS: tuple[Condition, ...] = (
    Condition("ketamine_misuse", "History of ketamine abuse or dependence", FlagKind.ABSOLUTE),
    Condition("psychosis_or_mania", "Active psychosis or mania", FlagKind.ABSOLUTE),
    Condition("schizophrenia", "Schizophrenia or schizoaffective disorder", FlagKind.ABSOLUTE),
    Condition("suicidality", "Active suicidal thoughts, or a suicide attempt in the past year", FlagKind.ABSOLUTE),
    Condition("glaucoma", "Glaucoma", FlagKind.ABSOLUTE),
    Condition("intracranial_pressure", "Increased intracranial pressure", FlagKind.ABSOLUTE),
    Condition("pregnant_or_nursing", "Pregnant or nursing", FlagKind.ABSOLUTE),
    Condition("uncontrolled_hypertension", "Uncontrolled high blood pressure (hypertension)",
              FlagKind.CLEARANCE_REQUIRED),
    Condition("heart_failure", "Congestive heart failure", FlagKind.CLEARANCE_REQUIRED),
    Condition("copd", "COPD (chronic obstructive pulmonary disease)", FlagKind.CLEARANCE_REQUIRED),
    Condition("hyperthyroidism", "Hyperthyroidism (overactive thyroid)", FlagKind.CLEARANCE_REQUIRED),
)
CONDITIONS_BY_KEY = {c.key: c for c in CONDITIONS}
SUICIDALITY = "suicidality"

# --------------------------------------------------------------------------------------------
# PHQ-9 and GAD-7 (standard wording, 0-3 per item, standard severity bands)
# --------------------------------------------------------------------------------------------

FREQUENCY_CHOICES = ((0, "Not at all"), (1, "Several days"), (2, "More than half the days"),
                     (3, "Nearly every day"))
QUESTIONNAIRE_STEM = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"

PHQ9_ITEMS = (
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself — or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed; or the opposite — being so "
    "fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
)
GAD7_ITEMS = (
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
)

# (lowest total, band) — each band runs up to the next one's lowest total.
PHQ9_BANDS = ((0, "minimal"), (5, "mild"), (10, "moderate"), (15, "moderately severe"), (20, "severe"))
GAD7_BANDS = ((0, "minimal"), (5, "mild"), (10, "moderate"), (15, "severe"))

PHQ9_KEYS = tuple(f"phq9_{i}" for i in range(1, 10))
GAD7_KEYS = tuple(f"gad7_{i}" for i in range(1, 8))


@dataclass(frozen=True)
class Score:
    instrument: str
    total: int
    band: str
    items: tuple[int, ...]

    @property
    def item9_positive(self) -> bool:
        return self.instrument == "PHQ-9" and self.items[8] > 0

    def as_dict(self) -> dict:
        return {"instrument": self.instrument, "total": self.total, "band": self.band, "items": list(self.items)}


def band_for(total: int, bands: tuple[tuple[int, str], ...]) -> str:
    label = bands[0][1]
    for lowest, name in bands:
        if total >= lowest:
            label = name
    return label


def _score(instrument: str, items, count: int, bands, field_prefix: str) -> Score:
    values = list(items)
    if len(values) != count:
        raise ValidationFailed(f"{instrument} has {count} questions; answer each one.", field=field_prefix)
    errors = {}
    clean = []
    for i, v in enumerate(values, start=1):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3:
            errors[f"{field_prefix}_{i}"] = ["Choose one of the four answers (0 to 3)."]
        else:
            clean.append(v)
    if errors:
        raise ValidationFailed(f"Some {instrument} answers are out of range.", errors=errors)
    total = sum(clean)
    return Score(instrument, total, band_for(total, bands), tuple(clean))


def score_phq9(items) -> Score:
    """PHQ-9: nine items scored 0-3, total 0-27."""
    return _score("PHQ-9", items, 9, PHQ9_BANDS, "phq9")


def score_gad7(items) -> Score:
    """GAD-7: seven items scored 0-3, total 0-21."""
    return _score("GAD-7", items, 7, GAD7_BANDS, "gad7")


# --------------------------------------------------------------------------------------------
# The intake questions and their validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextQuestion:
    key: str
    label: str
    hint: str = ""
    required: bool = True
    max_length: int = 4000
    multiline: bool = True


TEXT_QUESTIONS: tuple[TextQuestion, ...] = (
    TextQuestion("medical_history", "Medical history",
                 "Past and current illnesses, surgeries, hospital stays, heart or breathing conditions. "
                 "Write “none” if none."),
    TextQuestion("medications", "Current medications and doses",
                 "Everything you take, including supplements, with the dose and how often. Write “none” if none."),
    TextQuestion("allergies", "Allergies", "Medicines, foods or other allergies. Write “none” if none."),
    TextQuestion("substance_use", "Alcohol, cannabis and other substance use",
                 "What, how much and how often, now and in the past."),
    TextQuestion("psychedelic_experience", "Previous psychedelic or ketamine experience",
                 "What, when, and how it went. Write “none” if none."),
    TextQuestion("mental_health_history", "Mental-health history",
                 "Diagnoses, hospital stays, past treatment. Write “none” if none."),
    TextQuestion("current_care", "Current mental-health care",
                 "Therapist or psychiatrist you see now, and how to reach them if you are happy for us to.",
                 required=False),
    TextQuestion("condition_details", "Anything to add about the conditions above",
                 "If you ticked a condition, tell the provider more (when, treatment, how it is now).",
                 required=False),
    TextQuestion("emergency_contact_name", "Emergency contact: name and relationship", max_length=200,
                 multiline=False),
    TextQuestion("emergency_contact_phone", "Emergency contact: phone number", max_length=40, multiline=False),
)


@dataclass(frozen=True)
class NumberQuestion:
    key: str
    label: str
    low: int
    high: int
    required: bool = False


NUMBER_QUESTIONS: tuple[NumberQuestion, ...] = (
    NumberQuestion("bp_systolic", "Blood pressure, upper number (systolic)", 60, 260),
    NumberQuestion("bp_diastolic", "Blood pressure, lower number (diastolic)", 30, 160),
    NumberQuestion("height_cm", "Height (cm)", 90, 250, required=True),
    NumberQuestion("weight_kg", "Weight (kg)", 25, 350, required=True),
)

ALL_KEYS = (tuple(q.key for q in TEXT_QUESTIONS) + tuple(q.key for q in NUMBER_QUESTIONS)
            + tuple(c.key for c in CONDITIONS) + PHQ9_KEYS + GAD7_KEYS)
REQUIRED_MESSAGE = "Please answer this question."


def _as_int(value):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError
    return int(text)


def clean_answers(raw: dict, *, complete: bool) -> dict:
    """Check and normalise answers. ``complete`` (submitting) makes required answers required.

    Raises ValidationFailed with field errors; returns a plain JSON-able dict otherwise.
    """
    raw = raw or {}
    errors: dict[str, list[str]] = {}
    out: dict = {}
    for q in TEXT_QUESTIONS:
        value = raw.get(q.key)
        text = "" if value is None else str(value).replace("\r\n", "\n").strip()
        if len(text) > q.max_length:
            errors[q.key] = [f"Please keep this under {q.max_length} characters (it has {len(text)})."]
        elif complete and q.required and not text:
            errors[q.key] = [REQUIRED_MESSAGE]
        out[q.key] = text
    for q in NUMBER_QUESTIONS:
        try:
            number = _as_int(raw.get(q.key))
        except ValueError:
            errors[q.key] = ["Enter a whole number."]
            continue
        if number is not None and not q.low <= number <= q.high:
            errors[q.key] = [f"Enter a number between {q.low} and {q.high}."]
        elif complete and q.required and number is None:
            errors[q.key] = [REQUIRED_MESSAGE]
        out[q.key] = number
    if (out.get("bp_systolic") is None) != (out.get("bp_diastolic") is None) and not (
            {"bp_systolic", "bp_diastolic"} & errors.keys()):
        errors["bp_diastolic"] = ["Give both blood pressure numbers, or leave both empty if you do not know them."]
    for c in CONDITIONS:
        value = raw.get(c.key)
        out[c.key] = value in (True, "y", "yes", "on", "true", "1", 1)
    for key in PHQ9_KEYS + GAD7_KEYS:
        try:
            number = _as_int(raw.get(key))
        except ValueError:
            number = -1
        if number is not None and not 0 <= number <= 3:
            errors[key] = ["Choose one of the four answers."]
        elif complete and number is None:
            errors[key] = ["Please choose an answer."]
        out[key] = number
    if errors:
        raise ValidationFailed("Some answers need attention.", errors=errors)
    return out


# --------------------------------------------------------------------------------------------
# Rules -> flags -> referral summary
# --------------------------------------------------------------------------------------------

BP_SYSTOLIC_LIMIT = 140
BP_DIASTOLIC_LIMIT = 90
PHQ9_SEVERE = 20


@dataclass(frozen=True)
class Flag:
    key: str
    label: str
    kind: FlagKind

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "kind": self.kind.value}


@dataclass
class Screening:
    level: ScreeningLevel
    flags: list[Flag] = field(default_factory=list)
    phq9: Score | None = None
    gad7: Score | None = None
    safety: bool = False

    @property
    def absolute(self) -> list[Flag]:
        return [f for f in self.flags if f.kind == FlagKind.ABSOLUTE]

    @property
    def clearance_required(self) -> list[Flag]:
        return [f for f in self.flags if f.kind == FlagKind.CLEARANCE_REQUIRED]

    def summary(self) -> dict:
        """The referral summary the provider reads (stored encrypted)."""
        return {
            "level": self.level.value,
            "level_label": LEVEL_LABELS[self.level],
            "absolute": [f.as_dict() for f in self.absolute],
            "clearance_required": [f.as_dict() for f in self.clearance_required],
            "phq9": self.phq9.as_dict() if self.phq9 else None,
            "gad7": self.gad7.as_dict() if self.gad7 else None,
            "safety": self.safety,
        }


def safety_signal(answers: dict) -> bool:
    """Thoughts of self-harm (PHQ-9 item 9 above 0) or reported active suicidal ideation.

    Works on partial (draft) answers too: the participant is shown crisis resources at once.
    """
    item9 = answers.get("phq9_9")
    return bool(answers.get(SUICIDALITY)) or (isinstance(item9, int) and item9 > 0)


def screen(answers: dict) -> Screening:
    """Apply every rule to complete, cleaned answers (``clean_answers(..., complete=True)``)."""
    flags: list[Flag] = [Flag(c.key, c.label, c.kind) for c in CONDITIONS if answers.get(c.key)]
    phq9 = score_phq9([answers[k] for k in PHQ9_KEYS])
    gad7 = score_gad7([answers[k] for k in GAD7_KEYS])
    if phq9.item9_positive:
        flags.append(Flag("phq9_item9", "Thoughts of self-harm reported on PHQ-9 item 9: safety review needed",
                          FlagKind.CLEARANCE_REQUIRED))
    if phq9.total >= PHQ9_SEVERE:
        flags.append(Flag("phq9_severe", f"Severe depressive symptoms (PHQ-9 total {phq9.total})",
                          FlagKind.CLEARANCE_REQUIRED))
    systolic, diastolic = answers.get("bp_systolic"), answers.get("bp_diastolic")
    if systolic is not None and diastolic is not None and (
            systolic >= BP_SYSTOLIC_LIMIT or diastolic >= BP_DIASTOLIC_LIMIT):
        flags.append(Flag("bp_elevated", f"Reported blood pressure {systolic}/{diastolic} is at or above "
                                         f"{BP_SYSTOLIC_LIMIT}/{BP_DIASTOLIC_LIMIT}", FlagKind.CLEARANCE_REQUIRED))
    if any(f.kind == FlagKind.ABSOLUTE for f in flags):
        level = ScreeningLevel.ABSOLUTE
    elif flags:
        level = ScreeningLevel.CLEARANCE_REQUIRED
    else:
        level = ScreeningLevel.NONE
    return Screening(level=level, flags=flags, phq9=phq9, gad7=gad7, safety=safety_signal(answers))
