"""Page-number pagination over a SQLAlchemy select, shared by HTML lists and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from retreat.extensions import db

MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(stmt: Select, *, page: int = 1, per_page: int = 50) -> Page:
    """``stmt`` must be ordered (stable pages). Out-of-range pages are empty, never an error."""
    page = max(1, int(page or 1))
    per_page = min(MAX_PER_PAGE, max(1, int(per_page or 50)))
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, page=page, per_page=per_page, total=total)


@dataclass(frozen=True)
class Batch:
    """The first few rows of a list and how many there are in all (a home page's panel)."""

    items: list[Any]
    total: int

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.items))


def first_of(stmt: Select, *, limit: int = 5) -> Batch:
    """``stmt`` (ordered) as a ``Batch``: two statements whatever the number of rows."""
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(db.session.scalars(stmt.limit(limit))) if total else []
    return Batch(items=items, total=total)
