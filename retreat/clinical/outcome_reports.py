"""Outcome measures (PHQ-9, GAD-7) over time: the read side.

    the participant     their own scores per retreat (``participant_series``)
    referred provider   members of an organisation the enrollment was referred to for clearance
                        (``clinical_access.basis_for`` with the answers section); others: 404
    facilitators        the cohort's aggregate only (``cohort_aggregate``): no per-participant
                        value, and nothing for a timepoint with fewer than ``MIN_RESPONSES``

Every read decrypts in one place and leaves an audit event (``outcomes.read`` for a person's
scores, ``outcomes.aggregate_read`` for a cohort). Response rates are counted from the rows
themselves, without decrypting. Each function loads its rows in one query, whatever their number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import mean

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts.models import User
from retreat.clinical import access as clinical_access
from retreat.clinical import screening
from retreat.clinical.models import ClearanceRequest
from retreat.clinical.outcome_models import OutcomeInstrument, OutcomeMeasure, OutcomeTimepoint
from retreat.clinical.outcomes import open_scores
from retreat.cohorts.models import Cohort, Enrollment, EnrollmentStatus
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field
from retreat.extensions import db

MIN_RESPONSES = 5
SUPPRESSED = "fewer than 5 responses: not shown"

TIMEPOINTS = [t.value for t in OutcomeTimepoint]
TIMEPOINT_LABELS = {
    OutcomeTimepoint.BASELINE.value: "Baseline (intake)",
    OutcomeTimepoint.POST.value: "Right after",
    OutcomeTimepoint.MONTH_1.value: "1 month",
    OutcomeTimepoint.MONTH_3.value: "3 months",
}
# When a survey is due, counted from the cohort's last day (the baseline is the intake).
TIMEPOINT_OFFSETS = {
    OutcomeTimepoint.POST.value: timedelta(0),
    OutcomeTimepoint.MONTH_1.value: timedelta(days=30),
    OutcomeTimepoint.MONTH_3.value: timedelta(days=90),
}


@dataclass(frozen=True)
class Instrument:
    key: str
    label: str
    max_total: int
    bands: tuple[tuple[int, str], ...]
    improvement_drop: int  # a drop of at least this many points from baseline is clinically meaningful
    improvement_text: str


INSTRUMENTS = {
    OutcomeInstrument.PHQ9.value: Instrument(
        "phq9", "PHQ-9 (depression)", 27, screening.PHQ9_BANDS, 5,
        "PHQ-9: a total at least 5 points lower than the same person's baseline."),
    OutcomeInstrument.GAD7.value: Instrument(
        "gad7", "GAD-7 (anxiety)", 21, screening.GAD7_BANDS, 4,
        "GAD-7: a total at least 4 points lower than the same person's baseline."),
}

# Who was invited to answer: everyone who took (or was about to take) their seat.
INVITED_STATUSES = (EnrollmentStatus.DEPOSIT_PAID.value, EnrollmentStatus.BALANCE_PAID.value,
                    EnrollmentStatus.ATTENDED.value, EnrollmentStatus.COMPLETED.value)


def band_label(instrument: str, total: int | float | None) -> str:
    if total is None:
        return ""
    return screening.band_for(int(round(total)), INSTRUMENTS[instrument].bands)


# --------------------------------------------------------------------------------------------
# One person's scores
# --------------------------------------------------------------------------------------------


@dataclass
class Point:
    timepoint: str
    total: int | None = None
    band: str = ""
    recorded_at: datetime | None = None
    change: int | None = None  # from baseline

    @property
    def label(self) -> str:
        return TIMEPOINT_LABELS[self.timepoint]


@dataclass
class Series:
    instrument: Instrument
    points: list[Point]

    @property
    def answered(self) -> int:
        return sum(1 for p in self.points if p.total is not None)


@dataclass
class PersonOutcomes:
    enrollment: Enrollment
    series: list[Series] = field(default_factory=list)

    @property
    def has_scores(self) -> bool:
        return any(s.answered for s in self.series)


def _series_from_rows(rows: list[OutcomeMeasure]) -> list[Series]:
    by_key = {(r.instrument, r.timepoint): r for r in rows}
    out = []
    for key, inst in INSTRUMENTS.items():
        points = []
        baseline = None
        for tp in TIMEPOINTS:
            row = by_key.get((key, tp))
            if row is None:
                points.append(Point(tp))
                continue
            total = int(open_scores(row)["total"])
            if tp == OutcomeTimepoint.BASELINE.value:
                baseline = total
            points.append(Point(tp, total, band_label(key, total), row.recorded_at,
                                None if baseline is None or tp == OutcomeTimepoint.BASELINE.value else total - baseline))
        out.append(Series(inst, points))
    return out


def _rows_for(enrollment_id: int) -> list[OutcomeMeasure]:
    return list(db.session.scalars(select(OutcomeMeasure).where(OutcomeMeasure.enrollment_id == enrollment_id)))


def _audit_person(actor: User, enrollment: Enrollment, basis: str, rows, *, ctx, now) -> None:
    audit.record("outcomes.read", actor=actor, object_type="enrollment", object_id=enrollment.id,
                 details={"participant_id": enrollment.participant_id, "basis": basis,
                          "measures": len(rows)}, ctx=ctx, now=now)


def read_person(actor: User | None, enrollment: Enrollment, *, ctx: RequestContext | None,
                now: datetime) -> PersonOutcomes:
    """One enrollment's scores for its participant or a member of a referred provider organisation.

    Anybody else: ``clinical_access.AccessDenied`` (404) after a ``clinical.denied`` audit event.
    """
    basis = clinical_access.basis_for(actor, enrollment, clinical_access.ANSWERS)
    if basis not in ("owner", "provider"):
        raise clinical_access.refuse(actor, enrollment.id, "outcomes", ctx=ctx, now=now)
    rows = _rows_for(enrollment.id)
    result = PersonOutcomes(enrollment, _series_from_rows(rows))
    _audit_person(actor, enrollment, basis, rows, ctx=ctx, now=now)
    return result


def participant_overview(actor: User, *, ctx: RequestContext | None, now: datetime) -> list[PersonOutcomes]:
    """The participant's own scores for every retreat that has any (one query for all rows)."""
    rows = list(db.session.scalars(select(OutcomeMeasure).options(joinedload(OutcomeMeasure.enrollment))
                                   .where(OutcomeMeasure.participant_id == actor.id)))
    by_enrollment: dict[int, list[OutcomeMeasure]] = {}
    for r in rows:
        by_enrollment.setdefault(r.enrollment_id, []).append(r)
    out = []
    for enr_id in sorted(by_enrollment, reverse=True):
        enr_rows = by_enrollment[enr_id]
        enr = enr_rows[0].enrollment
        out.append(PersonOutcomes(enr, _series_from_rows(enr_rows)))
        _audit_person(actor, enr, "owner", enr_rows, ctx=ctx, now=now)
    return out


def referred_participants(organization_id: int | None) -> list[dict]:
    """Enrollments referred to this organisation and how many questionnaires each has (no scores)."""
    if organization_id is None:
        return []
    enrollments = list(db.session.scalars(
        select(Enrollment).options(joinedload(Enrollment.participant), joinedload(Enrollment.cohort))
        .where(Enrollment.id.in_(select(ClearanceRequest.enrollment_id)
                                 .where(ClearanceRequest.organization_id == organization_id)))
        .order_by(Enrollment.id.desc())))
    counts: dict[int, int] = {}
    if enrollments:
        for enr_id in db.session.scalars(select(OutcomeMeasure.enrollment_id).where(
                OutcomeMeasure.enrollment_id.in_([e.id for e in enrollments]))):
            counts[enr_id] = counts.get(enr_id, 0) + 1
    return [{"enrollment": e, "measures": counts.get(e.id, 0)} for e in enrollments]


# --------------------------------------------------------------------------------------------
# The cohort's aggregate (facilitators)
# --------------------------------------------------------------------------------------------


@dataclass
class AggregateCell:
    timepoint: str
    invited: int
    answered: int
    due: bool
    shown: bool = False
    mean_total: float | None = None
    paired: int = 0  # people with this timepoint and a baseline
    mean_change: float | None = None
    improved_share: float | None = None  # 0..1 of the paired
    change_shown: bool = False

    @property
    def label(self) -> str:
        return TIMEPOINT_LABELS[self.timepoint]

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.invited if self.invited else None


@dataclass
class AggregateSeries:
    instrument: Instrument
    cells: list[AggregateCell]


@dataclass
class CohortAggregate:
    cohort: Cohort
    invited: int
    series: list[AggregateSeries]


def cohort_aggregate(actor: User, cohort: Cohort, *, ctx: RequestContext | None, now: datetime) -> CohortAggregate:
    """Mean total, mean change from baseline, share with a clinically meaningful improvement and
    response rate per instrument and timepoint. Two queries whatever the cohort's size.

    A timepoint with fewer than ``MIN_RESPONSES`` answers shows its response count as suppressed
    and no figure; a change needs at least ``MIN_RESPONSES`` people with both that timepoint and a
    baseline. The caller shows nothing per participant.
    """
    invited_ids = set(db.session.scalars(select(Enrollment.id).where(
        Enrollment.cohort_id == cohort.id, Enrollment.status.in_(INVITED_STATUSES))))
    rows = db.session.execute(select(OutcomeMeasure.enrollment_id, OutcomeMeasure.instrument,
                                     OutcomeMeasure.timepoint, OutcomeMeasure.answers_enc)
                              .where(OutcomeMeasure.cohort_id == cohort.id)).all()
    # answered per (instrument, timepoint): counted from rows, before any decryption
    answered: dict[tuple[str, str], set[int]] = {}
    for enr_id, inst, tp, _enc in rows:
        answered.setdefault((inst, tp), set()).add(enr_id)
    # decrypt only what will be shown (timepoints with enough answers, and their baselines)
    visible = {k for k, ids in answered.items() if len(ids) >= MIN_RESPONSES}
    needed_baselines = {inst for inst, tp in visible}
    totals: dict[tuple[str, str], dict[int, int]] = {}
    for enr_id, inst, tp, enc in rows:
        if (inst, tp) in visible or (tp == OutcomeTimepoint.BASELINE.value and inst in needed_baselines):
            totals.setdefault((inst, tp), {})[enr_id] = int(json.loads(decrypt_field(enc))["total"])
    series = []
    for key, inst in INSTRUMENTS.items():
        cells = []
        baseline = totals.get((key, OutcomeTimepoint.BASELINE.value), {})
        for tp in TIMEPOINTS:
            ids = answered.get((key, tp), set())
            offset = TIMEPOINT_OFFSETS.get(tp)
            due = offset is None or now >= cohort.ends_at + offset
            invited = len(invited_ids | ids) if due else len(ids)
            cell = AggregateCell(tp, invited=invited, answered=len(ids), due=due)
            if (key, tp) in visible:
                values = totals[(key, tp)]
                cell.shown = True
                cell.mean_total = round(mean(values.values()), 1)
                if tp != OutcomeTimepoint.BASELINE.value:
                    pairs = [(baseline[e], v) for e, v in values.items() if e in baseline]
                    cell.paired = len(pairs)
                    if len(pairs) >= MIN_RESPONSES:
                        cell.change_shown = True
                        cell.mean_change = round(mean(v - b for b, v in pairs), 1)
                        cell.improved_share = sum(1 for b, v in pairs if b - v >= inst.improvement_drop) / len(pairs)
            cells.append(cell)
        series.append(AggregateSeries(inst, cells))
    audit.record("outcomes.aggregate_read", actor=actor, object_type="cohort", object_id=cohort.id,
                 details={"shown": sorted(f"{i}:{t}" for i, t in visible)}, ctx=ctx, now=now)
    return CohortAggregate(cohort, len(invited_ids), series)


# --------------------------------------------------------------------------------------------
# Export (the participant's own data)
# --------------------------------------------------------------------------------------------


def export_rows(participant: User) -> list[dict]:
    """Every score of ``participant`` (the caller checks that the actor is the participant)."""
    rows = db.session.scalars(select(OutcomeMeasure).where(OutcomeMeasure.participant_id == participant.id)
                              .order_by(OutcomeMeasure.enrollment_id, OutcomeMeasure.instrument, OutcomeMeasure.id))
    out = []
    for r in rows:
        scores = open_scores(r)
        out.append({"enrollment_id": r.enrollment_id, "questionnaire": INSTRUMENTS[r.instrument].label,
                    "timepoint": TIMEPOINT_LABELS.get(r.timepoint, r.timepoint), "answers": scores["items"],
                    "total": scores["total"], "severity": band_label(r.instrument, scores["total"]),
                    "recorded_at": r.recorded_at.isoformat(), "source": r.source})
    return out
