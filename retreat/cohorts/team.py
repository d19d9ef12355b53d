"""Whose cohort is it: the facilitators of a cohort, as a rule other domains scope their lists by.

A cohort's team is the facilitators assigned to its sessions; while none is assigned yet, every
facilitator (the same people ``catalog.facilitators`` emails). Admins see every cohort. Alerts,
the facilitator's home and its counts all ask this module, so the people an alert is emailed to
are exactly the people who can open it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, or_, select, true

from retreat.accounts.models import Role
from retreat.cohorts.models import CohortSession
from retreat.core.context import Actor
from retreat.extensions import db


def _assigned(cohort_id_column) -> ColumnElement[bool]:
    return exists().where(CohortSession.cohort_id == cohort_id_column, CohortSession.facilitator_id.is_not(None))


def on_team(actor: Actor, cohort_id_column) -> ColumnElement[bool]:
    """A SQL condition: ``actor`` is on the team of the cohort ``cohort_id_column`` names."""
    if actor.role == Role.ADMIN:
        return true()
    if actor.role != Role.FACILITATOR:
        return false()
    mine = exists().where(CohortSession.cohort_id == cohort_id_column, CohortSession.facilitator_id == actor.id)
    return or_(mine, ~_assigned(cohort_id_column))


def is_on_team(actor: Actor, cohort_id: int | None) -> bool:
    if cohort_id is None:
        return False

    return bool(db.session.scalar(select(on_team(actor, cohort_id))))
