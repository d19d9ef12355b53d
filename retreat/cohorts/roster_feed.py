"""Staff's API reads of a cohort's people: the roster (names, emails, status, seat) and the
enrollments (status pipeline, seat, waitlist), for the cohort's team (``team.on_team``) only.

No clinical field is ever read here: no intake, clearance, screening, dosing or motivation
(encrypted) column; a test pins the keys. Keyset pages by enrollment id; one query per page.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from retreat.cohorts.models import Enrollment
from retreat.core import cursors
from retreat.core.errors import ValidationFailed
from retreat.extensions import db

MAX_LIMIT, DEFAULT_LIMIT = 200, 50
ROSTER_KEYS = ("enrollment_id", "participant_id", "name", "email", "status", "seat", "applied_at")
ENROLLMENT_KEYS = ("id", "cohort_id", "participant_id", "status", "seat", "applied_at", "seat_confirmed_at",
                   "hold_expires_at", "waitlist_position", "offer_expires_at")


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def _rows(cohort_id: int, limit: int, cursor: str | None) -> tuple[list[Enrollment], str | None]:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_LIMIT}.", field="limit")
    stmt = (select(Enrollment).options(joinedload(Enrollment.participant))
            .where(Enrollment.cohort_id == cohort_id))
    if cursor:
        stmt = stmt.where(Enrollment.id > cursors.decode_id(cursor))
    rows = list(db.session.scalars(stmt.order_by(Enrollment.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (cursors.encode(rows[-1].id, rows[-1].id) if more and rows else None)


def roster(cohort_id: int, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    rows, nxt = _rows(cohort_id, limit, cursor)
    return Page([{"enrollment_id": e.id, "participant_id": e.participant_id, "name": e.participant.name,
                  "email": e.participant.email, "status": e.status, "seat": e.seat, "applied_at": e.applied_at}
                 for e in rows], nxt)


def enrollments(cohort_id: int, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    rows, nxt = _rows(cohort_id, limit, cursor)
    return Page([{k: getattr(e, k) for k in ENROLLMENT_KEYS} for e in rows], nxt)


def team_cohorts(actor, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    """The cohorts on ``actor``'s team (every one for an admin), any status, by id."""
    from retreat.cohorts.models import Cohort
    from retreat.cohorts.team import on_team

    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_LIMIT}.", field="limit")
    stmt = select(Cohort).options(joinedload(Cohort.retreat)).where(on_team(actor, Cohort.id))
    if cursor:
        stmt = stmt.where(Cohort.id > cursors.decode_id(cursor))
    rows = list(db.session.scalars(stmt.order_by(Cohort.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([{"id": c.id, "title": c.title, "retreat": c.retreat.title, "status": c.status,
                  "starts_at": c.starts_at, "ends_at": c.ends_at, "timezone": c.timezone, "capacity": c.capacity}
                 for c in rows], cursors.encode(rows[-1].id, rows[-1].id) if more and rows else None)
