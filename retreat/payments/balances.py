"""Balances due: what confirmed participants still owe, aged by due date, and balance reminders.

The figures agree with what the participant sees on their payments page: an enrollment's total,
deposit and paid amount follow ``pricing.quote`` (scholarship override, discounts and adjustments
from the ledger, money received net of refunds and disputes) and its installments are covered in
order exactly as ``payments.installment_progress`` covers them. The difference is only how they
are computed: two queries for every enrollment at once (ledger sums with ``GROUP BY``, then the
current installments), so a page costs the same number of queries for ten participants or a
thousand.

When a balance is due is written once, here: ``balance_due_on(cohort)`` (the cohort's balance
date, else 14 days before its first day *there*), and days are the cohort's days: an amount is
overdue from the day after its due date in the cohort's time zone (``outstanding`` ages each row
on its cohort's date), whatever the date is in UTC or where the viewer is: at 23:30 in Denver on
the due date nothing is overdue yet, although the UTC date is already the next day.

Aging buckets of each unpaid amount, relative to ``today`` (the cohort's local date on ``now``):

* ``not_due``   due more than 7 days from today;
* ``due_7``     due today or within the next 7 days;
* ``overdue_30`` 1 to 30 days overdue;
* ``overdue_31`` more than 30 days overdue.

Money is never added across currencies: totals are kept per currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, or_, select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.enrollment import EXITS
from retreat.cohorts.models import Cohort, Enrollment, EnrollmentStatus, Retreat, SeatState
from retreat.core import locking, urls
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.core.pagination import Batch
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.messaging.models import OutboxMessage
from retreat.money import format_money
from retreat.payments.models import CASH_TYPES, PRICE_TYPES, Installment, LedgerEntry, PriceOverride
from retreat.payments.pricing import Quote
from retreat.timeutil import human_date, local_date

BUCKETS = ("not_due", "due_7", "overdue_30", "overdue_31")
BUCKET_LABELS = {
    "not_due": "Not due yet",
    "due_7": "Due within 7 days",
    "overdue_30": "1–30 days overdue",
    "overdue_31": "Over 30 days overdue",
}
BUCKET_SHORT = {"not_due": "Not due", "due_7": "Due ≤ 7 d", "overdue_30": "1–30 d late", "overdue_31": "30+ d late"}
OVERDUE_BUCKETS = ("overdue_30", "overdue_31")
DUE_BEFORE_START = timedelta(days=14)  # when the balance is due if the cohort names no date
_CLOSED = tuple(s.value for s in EXITS) + (EnrollmentStatus.COMPLETED.value,)


def bucket_for(due_on: date, today: date) -> str:
    days = (due_on - today).days
    if days > 7:
        return "not_due"
    if days >= 0:
        return "due_7"
    return "overdue_30" if days >= -30 else "overdue_31"


def balance_due_date(cohort_balance_due_on: date | None, cohort_starts_at: datetime, cohort_tz: str | None) -> date:
    """When a cohort's balance is due if no installment says otherwise: its balance date, else
    ``DUE_BEFORE_START`` before its first day, that day taken in the cohort's time zone (an evening
    start in Denver is already the next day in UTC)."""
    return cohort_balance_due_on or (local_date(cohort_starts_at, cohort_tz) - DUE_BEFORE_START)


def balance_due_on(cohort: Cohort) -> date:
    """When ``cohort``'s balance is due (``balance_due_date`` of its columns)."""
    return balance_due_date(cohort.balance_due_on, cohort.starts_at, cohort.timezone)


@dataclass
class Part:
    """One unpaid amount with its due date (an installment's remainder, or a balance with no plan)."""

    due_on: date
    amount: int
    seq: int | None  # installment number, None for a balance without an installment
    bucket: str


@dataclass
class BalanceRow:
    enrollment_id: int
    participant_id: int
    participant_name: str
    cohort_id: int
    cohort_title: str
    retreat_title: str
    quote: Quote
    parts: list[Part]
    today: date  # the cohort's local date when the row was computed
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def currency(self) -> str:
        return self.quote.currency

    @property
    def outstanding(self) -> int:
        return max(0, self.quote.balance)

    @property
    def overdue(self) -> int:
        return sum(self.buckets.get(b, 0) for b in OVERDUE_BUCKETS)

    @property
    def next_due(self) -> date | None:
        return min((p.due_on for p in self.parts), default=None)

    @property
    def oldest_overdue(self) -> date | None:
        return min((p.due_on for p in self.parts if p.bucket in OVERDUE_BUCKETS), default=None)


def allocate(q: Quote, installments: list[tuple[int, date, int]], fallback: date, today: date) -> list[Part]:
    """Split what is still owed into dated parts.

    ``installments``: (seq, due_on, amount) of the current plan, in order. Money paid beyond the
    deposit covers them in order (as ``payments.installment_progress`` does); the remainders are
    capped at the balance (a discount granted after the plan was made lowers the last ones), and a
    balance larger than the plan (an adjustment, or no plan at all) is due on ``fallback``.
    """
    balance = max(0, q.balance)
    toward_balance = max(0, q.paid - min(q.deposit, q.total))
    parts: list[Part] = []
    left = balance
    for seq, due_on, amount in installments:
        covered = min(amount, toward_balance)
        toward_balance -= covered
        remaining = min(amount - covered, left)
        if remaining > 0:
            parts.append(Part(due_on, remaining, seq, bucket_for(due_on, today)))
            left -= remaining
    if left > 0:
        parts.append(Part(fallback, left, None, bucket_for(fallback, today)))
    return parts


def _enrollment_filter(stmt, *, cohort_id: int | None, enrollment_id: int | None):
    stmt = stmt.where(Enrollment.seat == SeatState.CONFIRMED.value, Enrollment.status.not_in(_CLOSED))
    if cohort_id is not None:
        stmt = stmt.where(Enrollment.cohort_id == cohort_id)
    if enrollment_id is not None:
        stmt = stmt.where(Enrollment.id == enrollment_id)
    return stmt


def outstanding(*, now: datetime, cohort_id: int | None = None, enrollment_id: int | None = None
                ) -> list[BalanceRow]:
    """Every active enrollment with a confirmed seat that still owes money, with its aging parts
    on ``now`` (each cohort's own date).

    Two queries whatever the number of enrollments or ledger rows."""
    sums = (select(LedgerEntry.enrollment_id.label("enrollment_id"),
                   func.sum(case((LedgerEntry.entry_type.in_(CASH_TYPES), LedgerEntry.amount_minor),
                                 else_=0)).label("paid"),
                   func.sum(case((LedgerEntry.entry_type.in_(PRICE_TYPES), LedgerEntry.amount_minor),
                                 else_=0)).label("adjustments"))
            .group_by(LedgerEntry.enrollment_id).subquery())
    paid = func.coalesce(sums.c.paid, 0)
    adjustments = func.coalesce(sums.c.adjustments, 0)
    base = func.coalesce(PriceOverride.price_minor, Cohort.price_minor)
    stmt = (select(Enrollment.id, Enrollment.participant_id, User.name, Enrollment.cohort_id, Cohort.title,
                   Retreat.title, Cohort.currency, Cohort.price_minor, Cohort.deposit_minor, Cohort.balance_due_on,
                   Cohort.starts_at, Cohort.timezone, base.label("base"), paid.label("paid"), adjustments.label("adjustments"))
            .join(Cohort, Cohort.id == Enrollment.cohort_id)
            .join(Retreat, Retreat.id == Cohort.retreat_id)
            .join(User, User.id == Enrollment.participant_id)
            .outerjoin(PriceOverride, PriceOverride.enrollment_id == Enrollment.id)
            .outerjoin(sums, sums.c.enrollment_id == Enrollment.id)
            .where(or_(base + adjustments > paid, paid < 0))
            .order_by(Cohort.starts_at, Cohort.id, User.name, Enrollment.id))
    stmt = _enrollment_filter(stmt, cohort_id=cohort_id, enrollment_id=enrollment_id)
    rows = db.session.execute(stmt).all()
    if not rows:
        return []
    ids = select(Enrollment.id).where(Enrollment.id.in_([r[0] for r in rows])) if len(rows) <= 500 else \
        _enrollment_filter(select(Enrollment.id), cohort_id=cohort_id, enrollment_id=enrollment_id)
    plans: dict[int, list[tuple[int, date, int]]] = defaultdict(list)
    for enr_id, seq, due_on, amount in db.session.execute(
            select(Installment.enrollment_id, Installment.seq, Installment.due_on, Installment.amount_minor)
            .where(Installment.is_current.is_(True), Installment.enrollment_id.in_(ids))
            .order_by(Installment.enrollment_id, Installment.seq)):
        plans[enr_id].append((seq, due_on, amount))
    out = []
    for (enr_id, participant_id, name, c_id, c_title, r_title, currency, list_price, deposit, balance_date,
         starts_at, cohort_tz, base_price, paid_amount, adj) in rows:
        total = max(0, int(base_price) + int(adj))
        q = Quote(currency=currency.upper(), list_price=list_price, base_price=int(base_price),
                  discount=max(0, -int(adj)), total=total, deposit=min(deposit, total), paid=int(paid_amount))
        today = local_date(now, cohort_tz)
        parts = allocate(q, plans.get(enr_id, []), balance_due_date(balance_date, starts_at, cohort_tz), today)
        if not parts:
            continue
        buckets = dict.fromkeys(BUCKETS, 0)
        for p in parts:
            buckets[p.bucket] += p.amount
        out.append(BalanceRow(enrollment_id=enr_id, participant_id=participant_id, participant_name=name,
                              cohort_id=c_id, cohort_title=c_title, retreat_title=r_title, quote=q, parts=parts,
                              today=today, buckets=buckets))
    return out


def overdue(*, now: datetime) -> list[BalanceRow]:
    """The balances with money overdue on ``now`` (the payments dashboard), by enrollment."""
    return sorted((r for r in outstanding(now=now) if r.overdue), key=lambda r: r.enrollment_id)


def most_overdue(rows: list[BalanceRow], *, limit: int = 5) -> Batch:
    """Of ``outstanding`` rows, those with money overdue, the longest overdue first (finance's home)."""
    late = sorted((r for r in rows if r.overdue), key=lambda r: (r.oldest_overdue, r.enrollment_id))
    return Batch(items=late[:limit], total=len(late))


@dataclass
class CohortAging:
    cohort_id: int
    cohort_title: str
    currency: str
    participants: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    participants_in: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def total(self) -> int:
        return sum(self.buckets.values())

    @property
    def overdue(self) -> int:
        return sum(self.buckets[b] for b in OVERDUE_BUCKETS)


def by_cohort(rows: list[BalanceRow]) -> list[CohortAging]:
    cohorts: dict[int, CohortAging] = {}
    for r in rows:
        agg = cohorts.setdefault(r.cohort_id, CohortAging(r.cohort_id, r.cohort_title, r.currency))
        agg.participants += 1
        for b in BUCKETS:
            agg.buckets[b] += r.buckets[b]
            agg.participants_in[b] += 1 if r.buckets[b] > 0 else 0
    return list(cohorts.values())


def by_currency(rows: list[BalanceRow]) -> dict[str, dict[str, int]]:
    """{currency: {bucket: amount, "total": ..., "overdue": ...}}, currencies sorted."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        agg = out.setdefault(r.currency, {**dict.fromkeys(BUCKETS, 0), "total": 0, "overdue": 0, "participants": 0})
        for b in BUCKETS:
            agg[b] += r.buckets[b]
        agg["total"] += r.outstanding
        agg["overdue"] += r.overdue
        agg["participants"] += 1
    return dict(sorted(out.items()))


def check_bucket(bucket: str | None) -> str | None:
    if bucket in (None, ""):
        return None
    if bucket not in BUCKETS:
        raise ValidationFailed("Choose one of the aging buckets.", field="bucket")
    return bucket


# --------------------------------------------------------------------------------------------
# Reminders
# --------------------------------------------------------------------------------------------


@dataclass
class ReminderResult:
    queued: list[BalanceRow] = field(default_factory=list)
    already: list[BalanceRow] = field(default_factory=list)  # reminded today already


def reminder_key(enrollment_id: int, today: date) -> str:
    return f"balance-reminder-{enrollment_id}-{today.isoformat()}"


def _queue(rows: list[BalanceRow], *, now: datetime) -> ReminderResult:
    result = ReminderResult()
    if not rows:
        return result
    keys = {reminder_key(r.enrollment_id, r.today): r for r in rows}
    # Lock the enrollments (in id order) so that two clicks at once queue one reminder and the
    # second sees the first's key: it is reported as "already reminded today".
    locking.lock_many(Enrollment, [r.enrollment_id for r in rows])
    sent = set(db.session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(list(keys)))))
    people = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_([r.participant_id for key, r in keys.items() if key not in sent])))}
    base_url = urls.base_url()
    for key, r in keys.items():
        if key in sent:
            result.already.append(r)
            continue
        overdue_since = r.oldest_overdue
        outbox.enqueue(template="balance_reminder", dedupe_key=key, to_user=people[r.participant_id], now=now,
                       group_key=f"enrollment:{r.enrollment_id}",
                       context={"participant_name": r.participant_name, "cohort_title": r.cohort_title,
                                "retreat_title": r.retreat_title,
                                "balance": format_money(r.outstanding, r.currency),
                                "overdue": format_money(r.overdue, r.currency) if r.overdue else "",
                                "overdue_since": human_date(overdue_since) if overdue_since else "",
                                "next_due": human_date(r.next_due) if r.next_due else "",
                                "url": f"{base_url}/me/payments/{r.enrollment_id}"})
        result.queued.append(r)
    return result


def remind_participant(enrollment_id: int, *, now: datetime, actor: User,
                       ctx: RequestContext | None = None) -> ReminderResult:
    """Queue one balance reminder for an enrollment; a second one the same day (the cohort's day) is not sent."""
    if db.session.get(Enrollment, enrollment_id) is None:
        raise NotFound("No such enrollment.")
    rows = outstanding(now=now, enrollment_id=enrollment_id)
    if not rows:
        raise Conflict("This participant owes nothing, so no reminder was sent.")
    result = _queue(rows, now=now)
    audit.record("finance.balance_reminder", actor=actor, object_type="enrollment", object_id=enrollment_id,
                 ctx=ctx, now=now, details={"queued": len(result.queued), "already_today": len(result.already)})
    return result


def remind_cohort_bucket(cohort_id: int, bucket: str, *, now: datetime, actor: User,
                         ctx: RequestContext | None = None) -> ReminderResult:
    """Queue a balance reminder to everyone in a cohort with money in ``bucket`` (once a day each)."""
    bucket = check_bucket(bucket)
    if bucket is None:
        raise ValidationFailed("Choose one of the aging buckets.", field="bucket")
    if db.session.get(Cohort, cohort_id) is None:
        raise NotFound("No such cohort.")
    rows = [r for r in outstanding(now=now, cohort_id=cohort_id) if r.buckets[bucket] > 0]
    if not rows:
        raise Conflict(f"Nobody in this cohort has money {BUCKET_LABELS[bucket].lower()}.")
    result = _queue(rows, now=now)
    audit.record("finance.balance_reminder", actor=actor, object_type="cohort", object_id=cohort_id, ctx=ctx,
                 now=now, details={"bucket": bucket, "queued": len(result.queued),
                                   "already_today": len(result.already)})
    return result
