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

from collections.abc import Callable, Iterable

from sqlalchemy import BigInteger, String, event, select, text
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


def finance_version() -> int:
    return int(db.session.execute(_FINANCE_VERSION).scalar() or 0)


_FINANCE_VERSION = text(f"SELECT coalesce(max(version), 0) FROM cache_versions WHERE name = '{FINANCE}'")


# Who turns a flush into counter names: each domain registers what it knows (``collect_changes``),
# and the tables whose bulk writes cannot be traced to one key (``watch_bulk_writes``).
ChangeCollector = Callable[[Session, list, set], None]
_collectors: list[ChangeCollector] = []
_bulk_tables: dict[str, set[str]] = {}
_bulk_insert_ignored: set[str] = set()


def collect_changes(collector: ChangeCollector) -> ChangeCollector:
    """Register ``collector(session, changed_objects, names)``: after each flush it adds to ``names``
    the counters the changed objects feed. Used as a decorator by the domains' model modules."""
    if collector not in _collectors:
        _collectors.append(collector)
    return collector


def watch_bulk_writes(counter: str, tables: Iterable[str], *, ignore_inserts_into: Iterable[str] = ()) -> None:
    """An ORM bulk UPDATE/DELETE/INSERT of one of ``tables`` bumps ``counter`` (it names no single row)."""
    for name in tables:
        _bulk_tables.setdefault(name, set()).add(counter)
    _bulk_insert_ignored.update(ignore_inserts_into)


def watched_tables(counter: str) -> frozenset[str]:
    return frozenset(t for t, counters_ in _bulk_tables.items() if counter in counters_)


def _changed(session: Session, obj) -> bool:
    return obj in session.new or obj in session.deleted or session.is_modified(obj, include_collections=False)


@event.listens_for(Session, "after_flush")
def _collect_changes(session: Session, flush_context) -> None:
    touched = session.new | session.dirty | session.deleted
    if not touched:
        return
    changed = [obj for obj in touched if not isinstance(obj, CacheVersion) and _changed(session, obj)]
    if not changed:
        return
    names: set[str] = session.info.setdefault(_PENDING, set())
    for collector in _collectors:
        collector(session, changed, names)


@event.listens_for(Session, "do_orm_execute")
def _bulk_writes(state) -> None:
    """An ORM-enabled bulk UPDATE/DELETE/INSERT of a watched table cannot be traced to one key."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    bumped = _bulk_tables.get(name)
    if bumped and not (state.is_insert and name in _bulk_insert_ignored):
        state.session.info.setdefault(_PENDING, set()).update(bumped)


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
