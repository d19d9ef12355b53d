"""Whose cohort is it: the facilitators of a cohort, as a rule other domains scope their lists by.

A cohort's team is the facilitators assigned to its sessions; while none is assigned yet, every
facilitator (the same people ``catalog.facilitators`` emails). Admins see every cohort. Alerts,
the facilitator's home and its counts all ask this module, so the people an alert is emailed to
are exactly the people who can open it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, false, func, or_, select, true
from sqlalchemy.orm import aliased, joinedload

from retreat.accounts.models import Role
from retreat.cohorts.models import (
    EXITS,
    Cohort,
    CohortSession,
    CohortStatus,
    Enrollment,
    SeatState,
    SessionKind,
)
from retreat.core.context import Actor
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db


def _assigned(cohort_id_column) -> ColumnElement[bool]:
    s = aliased(CohortSession)  # an alias: the outer query may itself be over cohort sessions
    return exists().where(s.cohort_id == cohort_id_column, s.facilitator_id.is_not(None))


def on_team(actor: Actor, cohort_id_column) -> ColumnElement[bool]:
    """A SQL condition: ``actor`` is on the team of the cohort ``cohort_id_column`` names."""
    if actor.role == Role.ADMIN:
        return true()
    if actor.role != Role.FACILITATOR:
        return false()
    s = aliased(CohortSession)
    mine = exists().where(s.cohort_id == cohort_id_column, s.facilitator_id == actor.id)
    return or_(mine, ~_assigned(cohort_id_column))


def is_on_team(actor: Actor, cohort_id: int | None) -> bool:
    if cohort_id is None:
        return False

    return bool(db.session.scalar(select(on_team(actor, cohort_id))))


def sessions_between(actor: Actor, start: datetime, end: datetime, *, limit: int = 10) -> Batch:
    """The sessions ``actor`` runs (or whose cohort is theirs) that start in [start, end), soonest first."""
    stmt = (select(CohortSession).where(CohortSession.starts_at >= start, CohortSession.starts_at < end,
                                        or_(CohortSession.facilitator_id == actor.id,
                                            on_team(actor, CohortSession.cohort_id)))
            .options(joinedload(CohortSession.cohort)).order_by(CohortSession.starts_at, CohortSession.id))
    return first_of(stmt, limit=limit)


def next_dosing_session(organization_id: int | None, now: datetime) -> CohortSession | None:
    """The next dosing session (not yet ended) of a cohort referred to ``organization_id``."""
    if organization_id is None:
        return None
    return db.session.scalar(
        select(CohortSession).join(Cohort, Cohort.id == CohortSession.cohort_id)
        .where(Cohort.provider_organization_id == organization_id, Cohort.status != CohortStatus.CANCELLED.value,
               CohortSession.kind == SessionKind.DOSING.value, CohortSession.ends_at > now)
        .options(joinedload(CohortSession.cohort)).order_by(CohortSession.starts_at, CohortSession.id).limit(1))


def confirmed_count(cohort_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == cohort_id, Enrollment.seat == SeatState.CONFIRMED.value,
        Enrollment.status.not_in([s.value for s in EXITS]))) or 0
