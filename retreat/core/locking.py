"""Row locks, taken in one order, with a lock timeout, and never outside a transaction.

Every ``SELECT ... FOR UPDATE`` of the product goes through here (pretix's ``services/locking.py``
is the model), so the order in which a transaction may lock rows is written once, in
``LOCK_ORDER``, instead of in comments beside each call:

- a transaction locks tables in ``LOCK_ORDER`` (a facilitator before their consults, a cohort
  before its enrollments, an enrollment before its payments...), and rows of one table by
  ascending id; locking a row that comes *before* one it already holds raises ``LockOrderError``
  (two transactions locking the same rows in opposite orders would deadlock);
- a cohort's lock covers its subtree: once a transaction holds a cohort, the rows ranked after
  ``cohorts`` may be locked in the order its rule needs (every writer of them takes the cohort
  first), while a cohort locked after such rows is still refused;
- re-locking a row the transaction already holds is always allowed (a refresh);
- on PostgreSQL the first lock of a transaction sets ``lock_timeout`` (``LOCK_TIMEOUT_MS``,
  default 5 s) for the rest of it, so a stuck holder makes waiters fail with a clear error
  instead of hanging a worker;
- a lock is refused on a connection in autocommit mode, where it would end at once.

SQLite has no row locks: the app's ``BEGIN IMMEDIATE`` makes each write transaction exclusive,
so the same calls are plain SELECTs there (the order is still checked).

``skip_locked`` claims (the dispatcher, the follow-up sweep) take whichever rows are free: they
never wait, so they are exempt from the order check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from retreat.extensions import db

# The order a transaction takes its locks in: a table named earlier is locked before one named later.
LOCK_ORDER: tuple[str, ...] = (
    "users",                     # a facilitator's row serialises their consult bookings
    "deletion_requests",         # (a participant's row serialises their deletion requests)
    "consultations",
    "discount_codes",
    "cohorts",
    "integration_plans",
    "enrollments",
    "intakes",
    "clearance_requests",
    "dosing_records",            # one person at one dosing session: every board write locks it
    "safety_alerts",
    "discount_redemptions",
    "payments",
    "refunds",
    "autopay_mandates",          # a saved-card mandate (after its enrollment)
    "autopay_attempts",          # an automatic charge attempt (after its payment)
    "follow_ups",
    "integration_alerts",
    "outbox_messages",
    "reconciliation_runs",
    "reconciliation_items",
    "document_counters",         # last: held from a charge or refund's ledger entry to the commit
)
_RANK = {name: i for i, name in enumerate(LOCK_ORDER)}
_COHORTS = _RANK["cohorts"]
_HELD = "retreat.locks_held"         # session.info: {(rank, id)} of the current transaction
_TIMEOUT_SET = "retreat.lock_timeout_set"
DEFAULT_TIMEOUT_MS = 5000


class LockOrderError(RuntimeError):
    """A lock requested out of ``LOCK_ORDER`` (a deadlock waiting to happen)."""


class NotInTransaction(RuntimeError):
    """A lock requested where it would not last (an autocommit connection)."""


def _session() -> Session:
    return db.session()


def _table_of(model) -> str:
    return model.__table__.name


def _rank(table: str) -> int:
    try:
        return _RANK[table]
    except KeyError:
        raise LockOrderError(f"{table} is not in core.locking.LOCK_ORDER: add it where it belongs") from None


def _prepare(session: Session, keys: Sequence[tuple[int, Any]]) -> None:
    """Check the order of ``keys`` against the locks held, set the lock timeout once."""
    conn = session.connection()  # begins the transaction if none is open
    if _autocommits(conn):
        raise NotInTransaction("row locks need a transaction (this connection autocommits)")
    held: set = session.info.setdefault(_HELD, set())
    for key in keys:
        _check_order(held, key)
    if conn.dialect.name == "postgresql" and not session.info.get(_TIMEOUT_SET):
        from flask import current_app

        ms = int(current_app.config.get("LOCK_TIMEOUT_MS") or DEFAULT_TIMEOUT_MS)
        conn.execute(text(f"SET LOCAL lock_timeout = {ms}"))
        session.info[_TIMEOUT_SET] = True


def _check_order(held: set, key: tuple[int, Any]) -> None:
    """Refuse ``key`` if it comes before a lock already held, unless a cohort lock covers it."""
    if not held or key in held:
        return
    ordered = sorted(held, key=_sort_key)
    if key[0] > _COHORTS and any(k[0] == _COHORTS for k in held):
        # The cohort serialises its subtree: every writer of a cohort's enrollments, intakes,
        # requests, payments and refunds takes the cohort's lock first, so below it rows may be
        # locked in the order the rule needs (a "not cleared" decision offers the freed seat to
        # the waitlist after locking the request). Only rows ranked above the cohort are checked.
        ordered = [k for k in ordered if k[0] <= _COHORTS]
    later = [k for k in ordered if _sort_key(k) > _sort_key(key)]
    if later:
        raise LockOrderError(
            f"locking {LOCK_ORDER[key[0]]} #{key[1]} after {LOCK_ORDER[later[-1][0]]} #{later[-1][1]}: "
            f"take locks in core.locking.LOCK_ORDER, rows by ascending id")


def _autocommits(conn) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _sort_key(key: tuple[int, Any]) -> tuple[int, str]:
    rank, row_id = key
    return rank, f"{row_id:020d}" if isinstance(row_id, int) else str(row_id)


def _remember(session: Session, keys: Iterable[tuple[int, Any]]) -> None:
    session.info.setdefault(_HELD, set()).update(keys)


def lock(model, row_id, *, column=None):
    """``SELECT ... FOR UPDATE`` of one row (refreshed in the session); None if there is none."""
    rows = lock_many(model, [row_id], column=column)
    return rows[0] if rows else None


def lock_many(model, row_ids: Iterable, *, column=None) -> list:
    """Lock the rows of ``model`` whose ``column`` (default the primary key ``id``) is in
    ``row_ids``, in ascending order; returns them in that order (missing ids are skipped)."""
    session = _session()
    ids = sorted(set(row_ids), key=lambda v: _sort_key((0, v)))
    if not ids:
        return []
    rank = _rank(_table_of(model))
    col = column if column is not None else model.id
    keyed = column is None
    if keyed:
        _prepare(session, [(rank, i) for i in ids])
    else:
        _prepare(session, [])
    stmt = (select(model).where(col.in_(ids)).order_by(col).with_for_update()
            .execution_options(populate_existing=True))
    rows = list(session.scalars(stmt))
    _remember(session, [(rank, r.id) for r in rows])
    return rows


def lock_where(stmt: Select, model, *, of=None) -> list:
    """Lock the rows of ``model`` a query selects (a sweep's due rows), in ascending id order.

    The query must select ``model`` entities; they are ordered by id here so that two sweeps
    lock in the same order."""
    session = _session()
    rank = _rank(_table_of(model))
    _prepare(session, [])
    rows = list(session.scalars(stmt.order_by(None).order_by(model.id)
                                .with_for_update(of=of).execution_options(populate_existing=True)))
    keys = [(rank, r.id) for r in rows]
    held = session.info.get(_HELD) or set()
    first_new = min((k for k in keys if k not in held), key=_sort_key, default=None)
    if first_new is not None:
        _check_order(held, first_new)
    _remember(session, keys)
    return rows


def claim(stmt: Select, *, of=None, postgres_only: bool = False) -> Select:
    """A claim that skips rows other transactions hold (``FOR UPDATE SKIP LOCKED``): it never waits,
    so it is not ordered against other locks. With ``postgres_only`` SQLite gets the plain query."""
    session = _session()
    conn = session.connection()
    if _autocommits(conn):
        raise NotInTransaction("a claim needs a transaction (this connection autocommits)")
    if postgres_only and conn.dialect.name != "postgresql":
        return stmt
    return stmt.with_for_update(of=of, skip_locked=True)


def held() -> list[tuple[str, Any]]:
    """The locks this transaction took through this module, in order (for tests and debugging)."""
    keys = sorted(_session().info.get(_HELD) or (), key=_sort_key)
    return [(LOCK_ORDER[rank], row_id) for rank, row_id in keys]


def _forget(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_HELD, None)
        session.info.pop(_TIMEOUT_SET, None)


def install() -> None:
    """Forget a transaction's locks when it ends (called once by the app factory)."""
    from sqlalchemy import event

    if not event.contains(Session, "after_transaction_end", _forget):
        event.listen(Session, "after_transaction_end", _forget)
