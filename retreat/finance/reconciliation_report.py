"""Reading reconciliation runs: the report by category, and what changed between two runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased, selectinload

from retreat.cohorts.models import Enrollment
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.core.pagination import Batch, Page, first_of, paginate
from retreat.extensions import db
from retreat.finance.reconciliation_models import (
    ItemCategory,
    ReconciliationItem,
    ReconciliationRun,
    RunStatus,
)
from retreat.finance.reconciliation_queue import last_done_run

CATEGORY_LABELS = {
    ItemCategory.MISSING_IN_LEDGER.value: "In Stripe, not in the ledger",
    ItemCategory.MISSING_IN_STRIPE.value: "In the ledger, not in Stripe",
    ItemCategory.MISMATCH.value: "Amount or currency mismatch",
    ItemCategory.DISPUTE.value: "Disputes",
    ItemCategory.MATCHED.value: "Matched",
}
CATEGORY_ORDER = tuple(CATEGORY_LABELS)
CATEGORY_SHORT = {"missing_in_ledger": "Not in ledger", "missing_in_stripe": "Not in Stripe",
                  "mismatch": "Mismatch", "dispute": "Disputes", "matched": "Matched"}


def get_run(run_id: int) -> ReconciliationRun:
    the_run = db.session.get(ReconciliationRun, run_id)
    if the_run is None:
        raise NotFound(f"There is no reconciliation run #{run_id}.")
    return the_run


def runs(*, page: int = 1, per_page: int = 20) -> Page:
    return paginate(select(ReconciliationRun).order_by(ReconciliationRun.id.desc()), page=page, per_page=per_page)


def items(run_id: int, category: str, *, page: int = 1, per_page: int = 50) -> Page:
    stmt = (select(ReconciliationItem).where(ReconciliationItem.run_id == run_id,
                                             ReconciliationItem.category == category)
            .options(selectinload(ReconciliationItem.enrollment).selectinload(Enrollment.participant),
                     selectinload(ReconciliationItem.cohort), selectinload(ReconciliationItem.repaired_by))
            .order_by(ReconciliationItem.is_open.desc(), ReconciliationItem.stripe_created.desc(),
                      ReconciliationItem.id))
    return paginate(stmt, page=page, per_page=per_page)


def counted(run_id: int) -> dict[str, int]:
    """Items per category, counted now (every category, zero included)."""
    found = dict(db.session.execute(select(ReconciliationItem.category, func.count()).where(
        ReconciliationItem.run_id == run_id).group_by(ReconciliationItem.category)).all())
    return {c: int(found.get(c, 0)) for c in CATEGORY_ORDER}


def counts(the_run: ReconciliationRun) -> dict[str, int]:
    """Items per category: the saved totals of a finished run, counted live while it runs."""
    if the_run.status == RunStatus.DONE:
        return {c: the_run.count_of(c) for c in CATEGORY_ORDER}
    return counted(the_run.id)


@dataclass
class Change:
    key: str
    before: ReconciliationItem | None
    after: ReconciliationItem | None


@dataclass
class Comparison:
    a: ReconciliationRun
    b: ReconciliationRun
    appeared: list[Change] = field(default_factory=list)
    resolved: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    still_open: int = 0
    not_rechecked: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    limit: int = 200

    def add(self, name: str, change: Change) -> None:
        self.totals[name] = self.totals.get(name, 0) + 1
        bucket = getattr(self, name)
        if len(bucket) < self.limit:
            bucket.append(change)


def _differs(x: ReconciliationItem, y: ReconciliationItem) -> bool:
    return (x.category != y.category or x.stripe_amount_minor != y.stripe_amount_minor
            or x.ledger_amount_minor != y.ledger_amount_minor or x.stripe_currency != y.stripe_currency
            or x.ledger_currency != y.ledger_currency)


def _in_window(r: ReconciliationRun, when: datetime | None) -> bool:
    if when is None:
        return True
    return (r.since is None or when >= r.since) and (r.until is None or when <= r.until)


def compare(run_a: int, run_b: int, *, limit: int = 200) -> Comparison:
    """What changed from run ``a`` to run ``b`` (problems only: matched items are not listed)."""
    if run_a == run_b:
        raise ValidationFailed("Choose two different runs to compare.", field="b")
    a, b = get_run(run_a), get_run(run_b)
    for r in (a, b):
        if r.status != RunStatus.DONE:
            raise Conflict(f"Run #{r.id} is {r.status}: only finished runs can be compared.")
    out = Comparison(a, b, limit=limit)
    ia, ib = aliased(ReconciliationItem), aliased(ReconciliationItem)
    problems_a = (select(ia, ib).outerjoin(ib, and_(ib.run_id == b.id, ib.match_key == ia.match_key))
                  .where(ia.run_id == a.id, ia.category != ItemCategory.MATCHED.value).order_by(ia.id)
                  .execution_options(yield_per=500))
    for before, after in db.session.execute(problems_a):
        change = Change(before.match_key, before, after)
        was_open = before.is_open or before.repaired_at is not None  # as it stood when run a ended
        if after is None:
            if _in_window(b, before.stripe_created):
                out.add("resolved", change)  # no longer found on either side
            else:
                out.not_rechecked += 1
        elif after.category == ItemCategory.MATCHED or (was_open and not after.is_open):
            out.add("resolved", change)
        elif _differs(before, after) and (was_open or after.is_open):
            out.add("changed", change)
        elif after.is_open:
            out.still_open += 1
    new_b = (select(ib, ia).outerjoin(ia, and_(ia.run_id == a.id, ia.match_key == ib.match_key))
             .where(ib.run_id == b.id, ib.category != ItemCategory.MATCHED.value,
                    (ia.id.is_(None)) | (ia.category == ItemCategory.MATCHED.value))
             .order_by(ib.id).execution_options(yield_per=500))
    for after, before in db.session.execute(new_b):
        out.add("appeared", Change(after.match_key, before, after))
    return out



def open_items_of_last_run(*, limit: int = 5) -> tuple[ReconciliationRun | None, Batch]:
    """The latest finished run and its unresolved items (finance's home): what still needs a look."""
    the_run = last_done_run()
    if the_run is None:
        return None, Batch(items=[], total=0)
    return the_run, first_of(select(ReconciliationItem).where(ReconciliationItem.run_id == the_run.id,
                                                              ReconciliationItem.is_open.is_(True))
                             .order_by(ReconciliationItem.stripe_created.desc(), ReconciliationItem.id), limit=limit)
