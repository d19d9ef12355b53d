"""The guest's details and the pre-screen: checks, flags and the encrypted answers."""

from __future__ import annotations

import json
import re

from retreat.accounts import users as accounts
from retreat.consults.models import (
    Consultation,
)
from retreat.consults.settings import MAX_LEN
from retreat.core.crypto import decrypt_field
from retreat.core.errors import ValidationFailed
from retreat.timeutil import is_valid_zone

ANSWER_CHOICES = (("no", "No"), ("yes", "Yes"), ("unsure", "Not sure"))
FLAGGING_ANSWERS = frozenset({"yes", "unsure"})
# The pre-screen: the contraindications of the medical-clearance screening, asked in plain words.
# A consult is never refused for an answer; "yes" or "not sure" flags it for the facilitator.
PRESCREEN_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("psychosis", "Are you currently experiencing psychosis or mania, or have you been diagnosed with "
                  "schizophrenia or schizoaffective disorder?"),
    ("suicidality", "Are you having thoughts of ending your life, or have you attempted suicide in the "
                    "past year?"),
    ("ketamine_misuse", "Have you ever had a problem with ketamine use, misuse or dependence?"),
    ("pregnancy", "Are you pregnant, possibly pregnant, or nursing?"),
    ("pressure_conditions", "Have you been told you have glaucoma or increased pressure inside the skull "
                            "(intracranial pressure)?"),
    ("clearance_conditions", "Do you have high blood pressure that is not under control, congestive heart "
                             "failure, COPD, or an overactive thyroid (hyperthyroidism)?"),
)
PRESCREEN_KEYS = tuple(k for k, _ in PRESCREEN_QUESTIONS)
SAFETY_KEY = "suicidality"
HEARD_FROM_CHOICES = (
    "A search engine", "A friend or family member", "My therapist or clinician", "Social media",
    "A podcast, article or book", "Another way",
)

_PHONE_RE = re.compile(r"^[0-9+()./\- x]{5,40}$")


def validate_guest(*, name, email, phone, tz, reason, heard_from, answers) -> dict:
    """All guest-field checks in one place (forms and API); raises one ValidationFailed with every error."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = ["Enter your name."]
    elif len(name) > MAX_LEN["name"]:
        errors["name"] = [f"Keep your name under {MAX_LEN['name']} characters."]
    try:
        email = accounts.validate_email(email if isinstance(email, str) else "")
    except ValidationFailed:
        errors["email"] = ["Enter a valid email address, like name@example.com."]
    phone = (phone or "").strip() if isinstance(phone, str) else None
    if phone and (len(phone) > MAX_LEN["phone"] or not _PHONE_RE.match(phone)):
        errors["phone"] = ["Enter a phone number with digits (and + ( ) - if you like), or leave it empty."]
    if not is_valid_zone(tz if isinstance(tz, str) else None):
        errors["timezone"] = ["Choose a valid time zone, such as America/Denver."]
    reason = (reason or "").strip() if isinstance(reason, str) else None
    if reason and len(reason) > MAX_LEN["reason"]:
        errors["reason"] = [f"Keep this under {MAX_LEN['reason']} characters."]
    heard_from = (heard_from or "").strip() if isinstance(heard_from, str) else None
    if heard_from and len(heard_from) > MAX_LEN["heard_from"]:
        errors["heard_from"] = [f"Keep this under {MAX_LEN['heard_from']} characters."]
    clean_answers: dict[str, str] = {}
    if answers is not None and not isinstance(answers, dict):
        errors["answers"] = ["Answers must be an object of question: answer."]
    else:
        valid = {k for k, _ in ANSWER_CHOICES}
        for key, value in (answers or {}).items():
            if key not in PRESCREEN_KEYS:
                errors.setdefault("answers", []).append(
                    f"Unknown question {str(key)[:40]!r}; the questions are: {', '.join(PRESCREEN_KEYS)}.")
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            if value in (None, ""):
                continue
            if value not in valid:
                errors.setdefault("answers", []).append(f"Answer {key!r} with yes, no or unsure.")
                continue
            clean_answers[key] = value
    if errors:
        raise ValidationFailed("Some details need attention.", errors=errors)
    return {"name": name, "email": email, "phone": phone or None, "tz": tz, "reason": reason or None,
            "heard_from": heard_from or None, "answers": clean_answers}


def flags_for(answers: dict[str, str]) -> list[str]:
    """The pre-screen keys that need the facilitator's review (never a reason to refuse)."""
    return [k for k in PRESCREEN_KEYS if answers.get(k) in FLAGGING_ANSWERS]


def safety_signal(answers: dict[str, str]) -> bool:
    """Suicidal ideation or self-harm reported (or not ruled out) on the pre-screen."""
    return answers.get(SAFETY_KEY) in FLAGGING_ANSWERS


def consult_answers(consult: Consultation) -> dict[str, str]:
    raw = decrypt_field(consult.answers_encrypted)
    return json.loads(raw) if raw else {}


def consult_reason(consult: Consultation) -> str | None:
    return decrypt_field(consult.reason_encrypted)


def consult_outcome_notes(consult: Consultation) -> str | None:
    return decrypt_field(consult.outcome_notes_encrypted)


def answered_questions(consult: Consultation) -> list[tuple[str, str, bool]]:
    """(question, answer label, needs review) for display to the facilitator."""
    answers = consult_answers(consult)
    labels = dict(ANSWER_CHOICES)
    return [(q, labels.get(answers[k], "Not answered") if k in answers else "Not answered",
             answers.get(k) in FLAGGING_ANSWERS) for k, q in PRESCREEN_QUESTIONS]
