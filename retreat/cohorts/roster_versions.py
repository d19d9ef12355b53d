"""What a flush changes of a cohort's roster: the ``roster:<cohort>`` counters of ``core.cache_versions``.

The roster shows the cohort, its retreat and sessions, its enrollments and the rows kept per
enrollment (checklist items, consent signatures, notes; intakes and clearance requests, which
``retreat.clinical`` adds with ``track_enrollment_rows``), and the names and emails of its
participants. A change to any of them bumps the cohort's counter when the transaction commits; a
new consent document (every enrollment may have one more to sign) and untraceable bulk writes bump
``roster:*``. Cohort changes also bump ``finance`` (the reports show cohorts).
"""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from retreat.accounts.models import User
from retreat.cohorts.models import (
    ChecklistItem,
    Cohort,
    CohortSession,
    ConsentDocument,
    ConsentSignature,
    Enrollment,
    Retreat,
    RosterNote,
)
from retreat.core import cache_versions
from retreat.core.cache_versions import FINANCE, ROSTER_ALL, roster_key

_by_enrollment: list[type] = [ChecklistItem, ConsentSignature, RosterNote]
ROSTER_TABLES: set[str] = {"cohorts", "retreats", "cohort_sessions", "enrollments", "checklist_items",
                           "consent_signatures", "consent_documents", "roster_notes", "users"}


def track_enrollment_rows(*models: type) -> None:
    """Rows of ``models`` (each with an ``enrollment_id``) are shown on their cohort's roster."""
    for model in models:
        if model not in _by_enrollment:
            _by_enrollment.append(model)
        ROSTER_TABLES.add(model.__tablename__)
    cache_versions.watch_bulk_writes(ROSTER_ALL, ROSTER_TABLES, ignore_inserts_into={"users"})


@cache_versions.collect_changes
def _roster_changes(session: Session, changed: list, names: set[str]) -> None:
    by_enrollment = tuple(_by_enrollment)
    enrollment_ids: set[int] = set()
    user_ids: set[int] = set()
    retreat_ids: set[int] = set()
    for obj in changed:
        if isinstance(obj, Cohort):
            names.update((roster_key(obj.id), FINANCE))
        elif isinstance(obj, (Enrollment, CohortSession)):
            hist = inspect(obj).attrs.cohort_id.history
            for cid in (*hist.added, *hist.unchanged, *hist.deleted):
                if cid is not None:
                    names.add(roster_key(cid))
        elif isinstance(obj, by_enrollment):
            if obj.enrollment_id is not None:
                enrollment_ids.add(obj.enrollment_id)
        elif isinstance(obj, User):
            state = inspect(obj)
            if obj in session.dirty and (state.attrs.name.history.has_changes()
                                         or state.attrs.email.history.has_changes()):
                user_ids.add(obj.id)
        elif isinstance(obj, Retreat):
            if obj not in session.new:  # a new retreat has no cohorts yet
                retreat_ids.add(obj.id)
        elif isinstance(obj, ConsentDocument):  # every enrollment may now have a document to sign
            names.add(ROSTER_ALL)
    if retreat_ids:
        cohorts = Cohort.__table__
        names.update(roster_key(c) for c in session.connection().execute(
            select(cohorts.c.id).where(cohorts.c.retreat_id.in_(sorted(retreat_ids)))).scalars())
    if enrollment_ids or user_ids:
        conn = session.connection()
        table = Enrollment.__table__
        if enrollment_ids:
            names.update(roster_key(c) for c in conn.execute(
                select(table.c.cohort_id).where(table.c.id.in_(sorted(enrollment_ids))).distinct()).scalars())
        if user_ids:
            names.update(roster_key(c) for c in conn.execute(
                select(table.c.cohort_id).where(table.c.participant_id.in_(sorted(user_ids))).distinct()).scalars())


track_enrollment_rows()
cache_versions.watch_bulk_writes(FINANCE, ["cohorts"])
