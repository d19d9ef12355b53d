"""Outcome measures (PHQ-9, GAD-7) over time: the write side.

``record`` stores one instrument's answers for one timepoint, encrypted; a timepoint answered once
is never overwritten (the participant is told it was already recorded). The intake's answers
become the baseline when the intake is submitted (a resubmission updates the baseline, since the
retreat has not happened yet).

Reading scores (the participant's own chart, the referred provider's view, the facilitators'
suppressed aggregate) lives in the reporting services, each leaving an audit event.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select

from retreat.clinical import screening
from retreat.clinical.access import seal_json
from retreat.clinical.outcome_models import OutcomeInstrument, OutcomeMeasure, OutcomeSource, OutcomeTimepoint
from retreat.cohorts.models import Enrollment
from retreat.core.crypto import decrypt_field
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db

ITEM_COUNTS = {OutcomeInstrument.PHQ9.value: 9, OutcomeInstrument.GAD7.value: 7}
SCORERS = {OutcomeInstrument.PHQ9.value: screening.score_phq9, OutcomeInstrument.GAD7.value: screening.score_gad7}


class AlreadyRecorded(Conflict):
    pass


def _validate(instrument: str, items) -> list[int]:
    if instrument not in ITEM_COUNTS:
        raise ValidationFailed("Unknown questionnaire.", field="instrument")
    count = ITEM_COUNTS[instrument]
    try:
        values = [int(v) for v in items]
    except (TypeError, ValueError):
        raise ValidationFailed("Each answer must be a number from 0 to 3.", field="items") from None
    if len(values) != count or any(v < 0 or v > 3 for v in values):
        raise ValidationFailed(f"Answer all {count} questions with a number from 0 to 3.", field="items")
    return values


def existing(enrollment_id: int, instrument: str, timepoint: str) -> OutcomeMeasure | None:
    return db.session.scalar(select(OutcomeMeasure).where(
        OutcomeMeasure.enrollment_id == enrollment_id, OutcomeMeasure.instrument == instrument,
        OutcomeMeasure.timepoint == timepoint))


def record(enr: Enrollment, instrument: str, timepoint: str, items, *, now: datetime,
           source: str = OutcomeSource.SURVEY.value, replace: bool = False) -> OutcomeMeasure:
    """Store one questionnaire. Raises ``AlreadyRecorded`` if this timepoint was answered, unless
    ``replace`` (only used for the baseline before the retreat)."""
    values = _validate(instrument, items)
    if timepoint not in {t.value for t in OutcomeTimepoint}:
        raise ValidationFailed("Unknown survey timepoint.", field="timepoint")
    total = SCORERS[instrument](values).total
    payload = seal_json({"items": values, "total": total})
    row = existing(enr.id, instrument, timepoint)
    if row is not None:
        if not replace:
            raise AlreadyRecorded("This questionnaire was already answered; your first answers are kept.")
        row.answers_enc = payload
        row.recorded_at = now
        row.source = source
        return row
    row = OutcomeMeasure(enrollment_id=enr.id, participant_id=enr.participant_id, cohort_id=enr.cohort_id,
                         instrument=instrument, timepoint=timepoint, source=source, answers_enc=payload,
                         recorded_at=now)
    with db.session.begin_nested():
        db.session.add(row)
        db.session.flush()
    return row


def record_baseline_from_intake(enr: Enrollment, answers: dict, *, now: datetime) -> None:
    """Copy the intake's PHQ-9 and GAD-7 items as the baseline (replacing an earlier submission)."""
    record(enr, OutcomeInstrument.PHQ9.value, OutcomeTimepoint.BASELINE.value,
           [answers[k] for k in screening.PHQ9_KEYS], now=now, source=OutcomeSource.INTAKE.value, replace=True)
    record(enr, OutcomeInstrument.GAD7.value, OutcomeTimepoint.BASELINE.value,
           [answers[k] for k in screening.GAD7_KEYS], now=now, source=OutcomeSource.INTAKE.value, replace=True)


def open_scores(row: OutcomeMeasure) -> dict:
    """Decrypt one row's ``{"items": [...], "total": n}``. Callers are the audited read paths only."""
    return json.loads(decrypt_field(row.answers_enc))
