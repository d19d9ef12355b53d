"""Change counters: the key of caches shared by every web process.

A cached page is stored under the version of what it was computed from; every transaction that
writes such data bumps the version when it commits, so no process serves the old page after that.

``roster:<cohort id>`` counts changes to what a cohort's roster shows: the cohort, its retreat and
sessions, its enrollments and their checklist items, consent signatures, notes, intakes and
clearance requests, and the names and emails of its participants. ``finance`` counts new ledger
entries and changes to cohorts (the finance reports). ``roster:*`` counts changes no
single cohort can be named for (a new consent document every enrollment must sign, a bulk UPDATE);
a roster's version is the sum of both, so it only ever grows.

The table also holds two counters that are not cache keys: ``payouts:requested`` counts payout
webhooks received (bumped like the others, through ``bump_at_commit``) and ``payouts:synced`` is
the requested count the last automatic payout sync covered (``raise_to``); see
``retreat.finance.payouts.sync_requested``.

The bump is an upsert done in ``before_commit`` of the outermost transaction (not when a savepoint
is released, which fires the same hook), after the last flush: the counter row is the last
lock the transaction takes (no deadlock with the cohort's seat lock) and becomes visible in the
same commit as the data. A reader that sees the new version therefore also sees the new data; one
that read the old version just before the commit may store newer data under it, which is harmless.
Writes through raw connections (``session.connection().execute``) or another process's SQL are not
seen: they must bump ``roster:*`` themselves, or the cache's time limit bounds them.
"""

from __future__ import annotations

import functools

from sqlalchemy import BigInteger, String, event, inspect, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from retreat.extensions import db

ROSTER_ALL = "roster:*"
FINANCE = "finance"  # the ledger and the cohorts: what finance reports are computed from
_PENDING = "roster_changes"  # session.info key: names to bump at commit


def bump_at_commit(name: str) -> None:
    """Add one to counter ``name`` when the current transaction commits (nothing if it rolls back)."""
    db.session.info.setdefault(_PENDING, set()).add(name)


def raise_to(name: str, value: int) -> None:
    """Set counter ``name`` to ``value`` unless it is already at least that (in this transaction)."""
    table = CacheVersion.__table__
    conn = db.session.connection()
    stmt = _insert(conn).values(name=name, version=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.name], set_={"version": value},
                                            where=table.c.version < value))


def _insert(conn):
    """INSERT into the counters with the dialect's ON CONFLICT (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(CacheVersion.__table__)


def counters(*names: str) -> dict[str, int]:
    """The values of counters ``names`` (0 for one never bumped)."""
    rows = db.session.execute(select(CacheVersion.name, CacheVersion.version).where(CacheVersion.name.in_(names)))
    found = dict(rows.all())
    return {n: int(found.get(n) or 0) for n in names}


def roster_key(cohort_id: int) -> str:
    return f"roster:{cohort_id}"


class CacheVersion(db.Model):
    __tablename__ = "cache_versions"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


_ROSTER_VERSION = text("SELECT coalesce(sum(version), 0) FROM cache_versions WHERE name IN (:cohort, :every)")


def roster_version(cohort_id: int) -> int:
    """One indexed read: the version of a cohort's roster (0 for a cohort never changed, or none)."""
    return int(db.session.execute(_ROSTER_VERSION, {"cohort": roster_key(cohort_id), "every": ROSTER_ALL}).scalar()
               or 0)


@functools.cache
def _classify():
    from retreat.accounts.models import User
    from retreat.clinical.models import ClearanceRequest, Intake
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
    from retreat.payments.models import LedgerEntry

    by_enrollment = (ChecklistItem, ConsentSignature, RosterNote, Intake, ClearanceRequest)
    return Cohort, Enrollment, CohortSession, by_enrollment, User, Retreat, ConsentDocument, LedgerEntry


ROSTER_TABLES = frozenset({
    "cohorts", "retreats", "cohort_sessions", "enrollments", "checklist_items", "consent_signatures",
    "consent_documents", "roster_notes", "intakes", "clearance_requests", "users"})


FINANCE_TABLES = frozenset({"ledger_entries", "cohorts"})


def finance_version() -> int:
    return int(db.session.execute(_FINANCE_VERSION).scalar() or 0)


_FINANCE_VERSION = text(f"SELECT coalesce(max(version), 0) FROM cache_versions WHERE name = '{FINANCE}'")


def _changed(session: Session, obj) -> bool:
    return obj in session.new or obj in session.deleted or session.is_modified(obj, include_collections=False)


@event.listens_for(Session, "after_flush")
def _collect_roster_changes(session: Session, flush_context) -> None:
    touched = session.new | session.dirty | session.deleted
    if not touched:
        return
    Cohort, Enrollment, CohortSession, by_enrollment, User, Retreat, ConsentDocument, LedgerEntry = _classify()
    names: set[str] = session.info.setdefault(_PENDING, set())
    enrollment_ids: set[int] = set()
    user_ids: set[int] = set()
    retreat_ids: set[int] = set()
    for obj in touched:
        if isinstance(obj, CacheVersion) or not _changed(session, obj):
            continue
        if isinstance(obj, LedgerEntry):  # append-only: only new entries
            names.add(FINANCE)
        elif isinstance(obj, Cohort):
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


@event.listens_for(Session, "do_orm_execute")
def _bulk_writes(state) -> None:
    """An ORM-enabled bulk UPDATE/DELETE/INSERT of a roster table cannot be traced to a cohort."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    pending = state.session.info.setdefault(_PENDING, set())
    if name in ROSTER_TABLES and not (state.is_insert and name == "users"):  # a new account is on no roster yet
        pending.add(ROSTER_ALL)
    if name in FINANCE_TABLES:
        pending.add(FINANCE)


@event.listens_for(Session, "before_commit")
def _bump_roster_versions(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released (the hook fires for those too): bump when the transaction commits
    for _ in range(3):  # collect the last changes (commit would flush them after this hook)
        if not (session.new or session.dirty or session.deleted):
            break
        session.flush()
    names = session.info.pop(_PENDING, None)
    if not names:
        return
    conn = session.connection()
    table = CacheVersion.__table__
    stmt = _insert(conn).values([{"name": n, "version": 1} for n in sorted(names)])  # one lock order for all
    conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.name], set_={"version": table.c.version + 1}))


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction) -> None:
    """A rolled-back transaction changed nothing (a rolled-back savepoint only over-counts)."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
