"""Rows gathered during a block and written with one multi-row INSERT when it ends normally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from retreat.extensions import db


@contextmanager
def gather(pending: ContextVar, statement) -> Iterator[None]:
    """While the block runs, ``pending.get()`` is the list to append rows to; at its normal end the
    rows go in one ``executemany`` of ``statement`` (SQLAlchemy sends one multi-row INSERT and
    reuses its compiled form). Nothing is written when the block raises."""
    rows: list[dict] = []
    token = pending.set(rows)
    try:
        yield
    finally:
        pending.reset(token)
    if rows:
        db.session.execute(statement, rows)
