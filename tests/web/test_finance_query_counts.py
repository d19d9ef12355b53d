"""The finance pages cost the same number of SQL statements for 10 or 1,000 enrollments and ledger
rows: figures are SQL aggregates, never one query per row (no N+1)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from retreat.extensions import db as _db
from retreat.payments.models import LedgerEntry
from retreat.timeutil import now_utc, to_local
from tests import factories
from tests import finance_helpers as fh
from tests.conftest import signed_in

PAGES = ("/finance/", "/finance/balances", "/finance/balances?page=2", "/finance/reports",
         "/finance/reports?start=2025-01-01&end=2026-12-31", "/finance/exports")


_HARNESS = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)


@contextmanager
def counting():
    statements: list[str] = []

    def _count(conn, cursor, statement, parameters, context, executemany):
        if not _HARNESS.match(statement):  # the test's savepoints stand for the request's COMMIT
            statements.append(statement)

    event.listen(_db.engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(_db.engine, "before_cursor_execute", _count)


def _measure(client) -> dict[str, int]:
    client.get("/finance/")  # the session's first request does one-time work (e.g. the sign-in's bookkeeping)
    out = {}
    for path in PAGES:
        with counting() as statements:
            resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[-500:])
        out[path] = len(statements)
    return out


@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_statement_count_does_not_grow_with_rows(app, db, currency):
    now = now_utc()
    today = to_local(now, "America/Denver").date()
    kw = {"currency": currency, "price_minor": 300000, "deposit_minor": 60000} if currency == "JPY" else {}
    late = fh.cohort(starts_at=now + timedelta(days=40), balance_due_on=today - timedelta(days=5), **kw)
    soon = fh.cohort(starts_at=now + timedelta(days=60), balance_due_on=today + timedelta(days=5), **kw)
    client = signed_in(app, factories.user("finance", password=None, tz="America/Denver"))
    fh.bulk(late, 5, at=now, spread_days=200)
    fh.bulk(soon, 5, at=now, spread_days=200)
    _db.session.commit()
    small = _measure(client)
    fh.bulk(late, 495, at=now, spread_days=200)
    fh.bulk(soon, 495, at=now, spread_days=200)
    _db.session.commit()
    assert _db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 2000
    large = _measure(client)
    assert large == small, {p: (small[p], large[p]) for p in PAGES if small[p] != large[p]}
    assert max(large.values()) < 20  # a handful per page, whatever the data


def test_the_measure_would_catch_a_query_per_row(app, db):
    """The counter is real: loading each ledger entry's enrollment lazily grows with the rows."""
    c = fh.cohort()
    fh.bulk(c, 20)
    _db.session.commit()
    _db.session.expire_all()
    with counting() as statements:
        for e in _db.session.scalars(select(LedgerEntry).limit(20)):
            _db.session.get(type(c), e.enrollment_id)  # cached after the first: one statement
            e.payment_id and _db.session.execute(select(func.count()).where(LedgerEntry.payment_id == e.payment_id))
    assert len(statements) >= 21
