"""Finance reports: money collected, refunded and paid in fees, by cohort and by month.

Everything is an SQL aggregate over the ledger (``SUM ... GROUP BY``): the number of queries does
not grow with the number of ledger rows. Months are the viewer's calendar months: their bounds are
computed here in the viewer's time zone (DST included) and the database groups each entry into
the month whose UTC bounds contain it, which works the same on PostgreSQL and SQLite.

Money is never added across currencies: every figure is keyed by currency.

Categories of ledger entries:

* ``deposits`` / ``balances``: charges of deposit payments / of balance and installment payments
  (charges without a payment row count as ``other``);
* ``refunds``, ``disputes``, ``fees`` (negative amounts), and ``net`` = everything that moved money
  (charges + refunds + disputes + fees);
* ``discounts``: discounts and adjustments change the price owed, not money; reported apart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import and_, case, func, literal, select

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.cache import Cache
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.payments.models import LedgerEntry, LedgerType, Payment, PaymentKind
from retreat.timeutil import is_valid_zone, zone

MAX_MONTHS = 120  # a report spans at most ten years of months
DEFAULT_MONTHS = 12
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)  # dates a filter accepts
CATEGORIES = ("deposits", "balances", "screening_fees", "other", "refunds", "disputes", "fees")
MONEY_CATEGORIES = CATEGORIES  # what ``net`` adds up
CATEGORY_LABELS = {
    "deposits": "Deposits collected",
    "balances": "Balances collected",
    "screening_fees": "Screening fees collected",
    "other": "Other charges",
    "collected": "Collected (gross)",
    "refunds": "Refunds",
    "disputes": "Disputes",
    "fees": "Stripe fees",
    "net": "Net",
    "discounts": "Discounts and adjustments (price, not cash)",
}


@dataclass(frozen=True)
class ReportFilter:
    """Local dates (inclusive) in ``tz`` and an optional cohort. None means unbounded."""

    tz: str = "UTC"
    start: date | None = None
    end: date | None = None
    cohort_id: int | None = None
    cohort_title: str | None = None

    def utc_bounds(self) -> tuple[datetime | None, datetime | None]:
        z = zone(self.tz)
        lo = datetime.combine(self.start, time(0), z).astimezone(UTC) if self.start else None
        hi = datetime.combine(self.end + timedelta(days=1), time(0), z).astimezone(UTC) if self.end else None
        return lo, hi

    def query_args(self) -> dict[str, str]:
        """The filter as query-string arguments (for links and the CSV download)."""
        args = {}
        if self.start:
            args["start"] = self.start.isoformat()
        if self.end:
            args["end"] = self.end.isoformat()
        if self.cohort_id is not None:
            args["cohort"] = str(self.cohort_id)
        return args


def make_filter(*, tz: str | None, start: date | None = None, end: date | None = None,
                cohort_id: int | str | None = None, today: date | None = None,
                default_months: int | None = None) -> ReportFilter:
    """Check a filter: a range that is not backwards, at most ten years, a cohort that exists.

    With ``default_months`` a missing start is the first day of the month ``default_months - 1``
    months before the end (``today`` when no end is given), and a missing end is ``today``.
    """
    tz = tz if is_valid_zone(tz) else "UTC"
    cohort = None
    if cohort_id not in (None, ""):
        text = str(cohort_id).strip()
        if not text.isdigit() or len(text) > 12:
            raise ValidationFailed("Choose a cohort from the list.", field="cohort")
        cohort = db.session.get(Cohort, int(text))
        if cohort is None:
            raise ValidationFailed("There is no such cohort.", field="cohort")
    for name, value in (("start", start), ("end", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValidationFailed(f"Enter a date between {EARLIEST.year} and {LATEST.year}.", field=name)
    if default_months:
        end = end or today
        if start is None and end is not None:
            start = add_months(end.replace(day=1), -(default_months - 1))
    if start and end and end < start:
        raise ValidationFailed("The end date is before the start date.", field="end")
    if start and end and len(months_between(start, end)) > MAX_MONTHS:
        raise ValidationFailed(f"Choose a range of at most {MAX_MONTHS // 12} years.", field="start")
    return ReportFilter(tz=tz, start=start, end=end, cohort_id=cohort.id if cohort else None,
                        cohort_title=cohort.title if cohort else None)


def add_months(d: date, n: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + n, 12)
    return date(y, m + 1, 1)


def months_between(start: date, end: date) -> list[date]:
    """First days of the months from ``start``'s to ``end``'s, inclusive."""
    out, m = [], start.replace(day=1)
    while m <= end and len(out) <= MAX_MONTHS:
        out.append(m)
        m = add_months(m, 1)
    return out


def apply_filter(stmt, flt: ReportFilter):
    lo, hi = flt.utc_bounds()
    if lo is not None:
        stmt = stmt.where(LedgerEntry.created_at >= lo)
    if hi is not None:
        stmt = stmt.where(LedgerEntry.created_at < hi)
    if flt.cohort_id is not None:
        stmt = stmt.where(Enrollment.cohort_id == flt.cohort_id)
    return stmt


def _category():
    """The report category of a ledger entry, as an SQL expression."""
    charge = LedgerEntry.entry_type == LedgerType.CHARGE.value
    return case(
        (and_(charge, Payment.kind == PaymentKind.DEPOSIT.value), literal("deposits")),
        (and_(charge, Payment.kind.in_([PaymentKind.BALANCE.value, PaymentKind.INSTALLMENT.value])),
         literal("balances")),
        (and_(charge, Payment.kind == PaymentKind.SCREENING_FEE.value), literal("screening_fees")),
        (charge, literal("other")),
        (LedgerEntry.entry_type == LedgerType.REFUND.value, literal("refunds")),
        (LedgerEntry.entry_type == LedgerType.DISPUTE.value, literal("disputes")),
        (LedgerEntry.entry_type == LedgerType.FEE.value, literal("fees")),
        else_=literal("discounts"),
    )


def _month_case(months: list[date], tz: str):
    z = zone(tz)
    whens = []
    for m in months:
        lo = datetime.combine(m, time(0), z).astimezone(UTC)
        hi = datetime.combine(add_months(m, 1), time(0), z).astimezone(UTC)
        whens.append((and_(LedgerEntry.created_at >= lo, LedgerEntry.created_at < hi), literal(m.strftime("%Y-%m"))))
    return case(*whens, else_=literal("")) if whens else literal("")


@dataclass
class Figures:
    """Sums per category for one currency (minor units, signed as in the ledger)."""

    amounts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CATEGORIES, "discounts"), 0))
    entries: int = 0

    def add(self, category: str, amount: int, count: int = 0) -> None:
        self.amounts[category] = self.amounts.get(category, 0) + int(amount or 0)
        self.entries += int(count or 0)

    @property
    def collected(self) -> int:
        return (self.amounts["deposits"] + self.amounts["balances"] + self.amounts["screening_fees"]
                + self.amounts["other"])

    @property
    def net(self) -> int:
        return sum(self.amounts[c] for c in MONEY_CATEGORIES)

    def get(self, name: str) -> int:
        if name == "collected":
            return self.collected
        if name == "net":
            return self.net
        return self.amounts.get(name, 0)


@dataclass
class CohortFigures:
    cohort_id: int
    title: str
    currency: str
    figures: Figures


@dataclass
class Report:
    filter: ReportFilter
    months: list[date]
    totals: dict[str, Figures]  # currency -> figures
    by_month: dict[str, dict[str, Figures]]  # currency -> "YYYY-MM" -> figures
    by_cohort: list[CohortFigures]
    extras: dict = field(default_factory=dict)  # what views derive from it once (e.g. charts), cached along

    @property
    def currencies(self) -> list[str]:
        return sorted(self.totals)

    @property
    def month_labels(self) -> list[str]:
        return [m.strftime("%Y-%m") for m in self.months]

    @property
    def is_empty(self) -> bool:
        return not self.totals


def _rows(flt: ReportFilter, *columns):
    """One row per ledger entry in the filter with its category (a subquery to aggregate over: the
    grouping expressions hold bound parameters, which PostgreSQL cannot match between SELECT and
    GROUP BY, so the outer query groups by the subquery's columns)."""
    stmt = (select(LedgerEntry.currency.label("currency"), _category().label("category"),
                   LedgerEntry.amount_minor.label("amount"), LedgerEntry.id.label("id"), *columns)
            .join(Enrollment, Enrollment.id == LedgerEntry.enrollment_id)
            .outerjoin(Payment, Payment.id == LedgerEntry.payment_id))
    return apply_filter(stmt, flt).subquery()


def totals(flt: ReportFilter) -> dict[str, Figures]:
    """Sums per currency and category within the filter: one query."""
    rows = _rows(flt)
    stmt = (select(rows.c.currency, rows.c.category, func.sum(rows.c.amount), func.count(rows.c.id))
            .group_by(rows.c.currency, rows.c.category))
    out: dict[str, Figures] = {}
    for currency, category, amount, count in db.session.execute(stmt):
        out.setdefault(currency, Figures()).add(category, amount, count)
    return dict(sorted(out.items()))


def report(flt: ReportFilter) -> Report:
    """Totals, months and cohorts of a bounded filter: two queries, whatever the number of rows."""
    if flt.start is None or flt.end is None:
        raise ValidationFailed("A report needs a start and an end date.", field="start")
    months = months_between(flt.start, flt.end)
    rows = _rows(flt, _month_case(months, flt.tz).label("month"))
    stmt = (select(rows.c.currency, rows.c.month, rows.c.category, func.sum(rows.c.amount), func.count(rows.c.id))
            .group_by(rows.c.currency, rows.c.month, rows.c.category))
    tot: dict[str, Figures] = {}
    by_month: dict[str, dict[str, Figures]] = defaultdict(dict)
    for currency, label, category, amount, count in db.session.execute(stmt):
        tot.setdefault(currency, Figures()).add(category, amount, count)
        by_month[currency].setdefault(label, Figures()).add(category, amount, count)
    rows = _rows(flt, Enrollment.cohort_id.label("cohort_id"))
    sums = (select(rows.c.cohort_id, rows.c.currency, rows.c.category, func.sum(rows.c.amount).label("amount"),
                   func.count(rows.c.id).label("n"))
            .group_by(rows.c.cohort_id, rows.c.currency, rows.c.category).subquery())
    stmt = (select(Cohort.id, Cohort.title, sums.c.currency, sums.c.category, sums.c.amount, sums.c.n)
            .join(sums, sums.c.cohort_id == Cohort.id)
            .order_by(Cohort.starts_at, Cohort.id, sums.c.currency))
    cohorts: dict[tuple[int, str], CohortFigures] = {}
    for c_id, title, currency, category, amount, count in db.session.execute(stmt):
        cohorts.setdefault((c_id, currency), CohortFigures(c_id, title, currency, Figures())).figures.add(
            category, amount, count)
    return Report(filter=flt, months=months, totals=dict(sorted(tot.items())), by_month=dict(by_month),
                  by_cohort=list(cohorts.values()))


# --------------------------------------------------------------------------------------------
# Cache: a report is computed once per filter and content, per process, and kept under the
# ``finance`` change counter (retreat.core.cache_versions): every transaction that adds a ledger
# entry or changes a cohort raises it when it commits, in the same commit, so the next request of
# every process recomputes. CACHE_SECONDS bounds what no such write announces (rows written by
# raw SQL, such as ``seed-scale``'s COPY). (The key was the ledger's highest id before: a payment
# committing after one with a higher id could be missed until the entry expired.)
# --------------------------------------------------------------------------------------------

CACHE_SIZE = 64
CACHE_SECONDS = 30


def cache_enabled() -> bool:
    cfg = current_app.config
    return bool(cfg.get("FINANCE_REPORT_CACHE", not current_app.testing))


_CACHE = Cache("finance reports", max_entries=CACHE_SIZE, ttl=lambda: CACHE_SECONDS if cache_enabled() else 0)


def data_version() -> tuple:
    """What a report is computed from: one primary-key read."""
    from retreat.core.cache_versions import finance_version

    return (finance_version(),)


def _cached(kind: str, flt: ReportFilter, compute):
    if not _CACHE.ttl():
        return compute()
    return _CACHE.get_or_compute((kind, flt), compute, data_version())


def cached_report(flt: ReportFilter) -> Report:
    """``report``, reused while the ledger and the cohorts are unchanged (callers must not mutate it)."""
    return _cached("report", flt, lambda: report(flt))


def cached_fragment(key: tuple, compute):
    """Anything computed from the ledger and the cohorts only (a rendered section of a page, keyed by
    what else it depends on), cached like the reports."""
    return _cached("fragment", key, compute)


def cached_totals(flt: ReportFilter) -> dict[str, Figures]:
    return _cached("totals", flt, lambda: totals(flt))


def clear_cache() -> None:
    _CACHE.clear()


def cohort_choices() -> list[tuple[int, str]]:
    """(id, label) of every cohort, newest first, for filter forms."""
    return [(c_id, f"{title} ({starts.date().isoformat()})") for c_id, title, starts in db.session.execute(
        select(Cohort.id, Cohort.title, Cohort.starts_at).order_by(Cohort.starts_at.desc(), Cohort.id.desc()))]
