"""Payouts: what Stripe paid into the bank, and which charges, refunds, disputes and fees made it up.

``sync(now, since=None)`` pages Stripe's payouts (newest first, created since ``since``, or since
a few days before the newest payout already known) and, for each, the balance transactions it
settled. It runs in phases so that no transaction is open while Stripe is called: fetch from
Stripe; read which balance transactions we can link locally; fetch the charges we could not
link; then write. Writing is idempotent (a payout is unique by its ``po_`` id, a line by its
``txn_`` id): a second sync updates statuses and fills links, it never duplicates. The caller
commits (one commit per request or job).

Links of a line (``PayoutLine``), when known: a charge's fee entry is keyed by the charge's
balance transaction id, so the payment is found locally; otherwise the charge is fetched from
Stripe for its PaymentIntent. A refund is found by its ``re_`` id, a dispute movement by the
dispute entry keyed by its ``txn_`` id. The payout's own ``payout`` transaction is not a line.

Totals are derived: the lines' nets must add up to the payout's amount; a payout whose lines do
not is flagged with the difference.

Automatic sync: a ``payout.*`` webhook calls ``request_sync()``, which adds one to the
``payouts:requested`` counter in the commit that records the event (a duplicate event commits
nothing). The scheduler job ``finance.payouts_requested`` calls ``sync_requested(now)``: when
``requested`` is above ``payouts:synced`` it remembers ``requested``, syncs, and sets ``synced`` to
the remembered value in the commit that writes the payouts. A request that arrives during the sync
stays pending for the next run; a sync that fails (Stripe unreachable) rolls back and leaves it
pending too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.accounts.models import User
from retreat.audit.models import AuditEvent
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core import jobs
from retreat.core.cache_versions import bump_at_commit, counters, raise_to
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.finance.exports import BATCH, csv_stream, decimal_string
from retreat.finance.payout_models import Payout, PayoutLine, PayoutLineKind
from retreat.payments import gateway
from retreat.payments.models import LedgerEntry, LedgerType, Payment, Refund
from retreat.timeutil import to_local

REQUESTED = "payouts:requested"  # cache_versions counters (see the module docstring)
SYNCED = "payouts:synced"
RESYNC_DAYS = 7  # payouts created this long before the newest known one are read again (status changes)
EARLIEST = date(2000, 1, 1)


@dataclass
class SyncReport:
    payouts_seen: int = 0
    payouts_new: int = 0
    lines_new: int = 0
    lines_linked: int = 0
    flagged: list[tuple[str, int]] = field(default_factory=list)  # (po_ id, lines net - amount)

    def summary(self) -> str:
        text = (f"{self.payouts_seen} payout{'s' if self.payouts_seen != 1 else ''} read from Stripe, "
                f"{self.payouts_new} new, {self.lines_new} new line{'s' if self.lines_new != 1 else ''}.")
        if self.flagged:
            text += f" {len(self.flagged)} payout(s) do not add up: see the flagged rows."
        return text


# --------------------------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------------------------


def _kind(txn: dict) -> PayoutLineKind:
    t, category, source = txn["type"], txn["reporting_category"], txn.get("source") or ""
    if category in ("dispute", "dispute_reversal") or source.startswith("dp_"):
        return PayoutLineKind.DISPUTE
    if t in ("charge", "payment"):
        return PayoutLineKind.CHARGE
    if t in ("refund", "payment_refund"):
        return PayoutLineKind.REFUND
    if t in ("stripe_fee", "application_fee", "tax_fee"):
        return PayoutLineKind.FEE
    if t == "adjustment":
        return PayoutLineKind.ADJUSTMENT
    return PayoutLineKind.OTHER


def _since(since: date | datetime | None) -> int | None:
    if isinstance(since, datetime):
        return int(since.timestamp())
    if isinstance(since, date):
        if not EARLIEST <= since <= date(2100, 12, 31):
            raise ValidationFailed("Enter a date between 2000 and 2100.", field="since")
        return int(datetime.combine(since, time(0), UTC).timestamp())
    newest = db.session.scalar(select(func.max(Payout.stripe_created_at)))
    if newest is None:
        return None
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return int((newest - timedelta(days=RESYNC_DAYS)).timestamp())


def fetch(created_gte: int | None) -> list[tuple[dict, list[dict]]]:
    """Every payout created since ``created_gte`` with its balance transactions (Stripe only)."""
    out: list[tuple[dict, list[dict]]] = []
    after = None
    while True:
        page, more = gateway.list_payouts_page(created_gte=created_gte, starting_after=after)
        for po in page:
            txns: list[dict] = []
            t_after = None
            while True:
                t_page, t_more = gateway.list_payout_transactions_page(po["id"], starting_after=t_after)
                txns += [t for t in t_page if not t["type"].startswith("payout")]
                if not t_more or not t_page:
                    break
                t_after = t_page[-1]["id"]
            out.append((po, txns))
        if not more or not page:
            break
        after = page[-1]["id"]
    return out


def _local_charge_links(txn_ids: list[str]) -> dict[str, int]:
    """Charge balance transaction id -> payment id, from the fee entries keyed by it."""
    links: dict[str, int] = {}
    for chunk in _chunks(txn_ids):
        for obj, pid in db.session.execute(select(LedgerEntry.stripe_object_id, LedgerEntry.payment_id).where(
                LedgerEntry.entry_type == LedgerType.FEE.value, LedgerEntry.stripe_object_id.in_(chunk),
                LedgerEntry.payment_id.is_not(None))):
            links[obj] = pid
    return links


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def sync(now: datetime, since: date | datetime | None = None, *, actor: User | None = None,
         ctx: RequestContext | None = None) -> SyncReport:
    """Bring payouts and their lines in line with Stripe. Ends the open (read) transaction before
    calling Stripe; the caller commits the writes."""
    created_gte = _since(since)
    db.session.commit()  # end the read: nothing is open while Stripe is called
    fetched = fetch(created_gte)
    charge_txns = [t for _, txns in fetched for t in txns if _kind(t) == PayoutLineKind.CHARGE]
    known = _local_charge_links([t["id"] for t in charge_txns])
    known_lines = set()
    for chunk in _chunks([t["id"] for t in charge_txns]):
        known_lines |= set(db.session.scalars(select(PayoutLine.balance_transaction_id).where(
            PayoutLine.balance_transaction_id.in_(chunk), PayoutLine.payment_id.is_not(None))))
    db.session.commit()
    charge_pi: dict[str, str] = {}  # ch_ id -> pi_ id, for charges we cannot link locally
    for t in charge_txns:
        src = t.get("source") or ""
        if t["id"] not in known and t["id"] not in known_lines and src.startswith(("ch_", "py_")):
            pi_id = gateway.retrieve_charge(src).get("payment_intent")
            if pi_id:
                charge_pi[src] = pi_id
    report = SyncReport(payouts_seen=len(fetched))
    for po, txns in fetched:
        before = (report.payouts_new, report.lines_new, report.lines_linked, len(report.flagged))
        try:
            with db.session.begin_nested():
                _write(po, txns, known, charge_pi, now=now, report=report)
        except IntegrityError:  # a concurrent sync wrote the same payout first: update what it wrote
            report.payouts_new, report.lines_new, report.lines_linked = before[:3]
            del report.flagged[before[3]:]
            with db.session.begin_nested():
                _write(po, txns, known, charge_pi, now=now, report=report)
    for po_id, diff in report.flagged:
        audit.record("finance.payout_mismatch", object_type="payout", object_id=po_id, now=now,
                     details={"difference_minor": diff})
    audit.record("finance.payouts_synced", actor=actor, object_type="payout", object_id="stripe", now=now, ctx=ctx,
                 details={"since": created_gte, "payouts": report.payouts_seen, "new": report.payouts_new,
                          "lines_new": report.lines_new, "flagged": len(report.flagged)})
    return report


def request_sync() -> None:
    """A payout changed in Stripe (a ``payout.*`` webhook): sync when the current transaction commits."""
    bump_at_commit(REQUESTED)


def sync_pending() -> bool:
    """A payout webhook asked for a sync the job has not done yet."""
    c = counters(REQUESTED, SYNCED)
    return c[REQUESTED] > c[SYNCED]


def sync_requested(now: datetime) -> SyncReport | None:
    """The scheduler job: sync if a payout webhook asked for it since the last automatic sync (None
    if none did: Stripe is not called). The caller commits; the request is marked done in that
    commit, so a failed sync leaves it pending."""
    c = counters(REQUESTED, SYNCED)
    if c[REQUESTED] <= c[SYNCED]:
        return None
    report = sync(now)  # commits the read above before calling Stripe
    raise_to(SYNCED, c[REQUESTED])  # the count read before the sync: requests made during it stay pending
    return report


def last_automatic_sync() -> datetime | None:
    """When the job last synced payouts (the newest ``finance.payouts_synced`` audit without an actor)."""
    at = db.session.scalar(select(func.max(AuditEvent.at)).where(
        AuditEvent.action == "finance.payouts_synced", AuditEvent.actor_id.is_(None)))
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at


def _write(po: dict, txns: list[dict], known: dict[str, int], charge_pi: dict[str, str], *, now: datetime,
           report: SyncReport) -> None:
    payout = db.session.scalar(select(Payout).where(Payout.stripe_payout_id == po["id"]))
    arrival = datetime.fromtimestamp(po["arrival_date"] or po["created"], UTC).date()
    created = datetime.fromtimestamp(po["created"], UTC)
    if payout is None:
        payout = Payout(stripe_payout_id=po["id"], amount_minor=po["amount"], currency=po["currency"],
                        status=po["status"][:20], arrival_date=arrival, stripe_created_at=created, synced_at=now)
        db.session.add(payout)
        db.session.flush()
        report.payouts_new += 1
    else:
        payout.amount_minor, payout.currency, payout.status = po["amount"], po["currency"], po["status"][:20]
        payout.arrival_date, payout.synced_at = arrival, now
    ids = [t["id"] for t in txns]
    existing = {}
    for chunk in _chunks(ids):
        existing.update({pl.balance_transaction_id: pl for pl in db.session.scalars(
            select(PayoutLine).where(PayoutLine.balance_transaction_id.in_(chunk)))})
    links = _links(txns, known, charge_pi)
    # A ledger entry is settled by one line: never link it twice (e.g. a refund_failure line).
    wanted = [v["ledger_entry_id"] for v in links.values() if v.get("ledger_entry_id")]
    taken = set(db.session.scalars(select(PayoutLine.ledger_entry_id).where(
        PayoutLine.ledger_entry_id.in_(wanted)))) if wanted else set()
    for t in txns:
        line = existing.get(t["id"])
        if line is None:
            line = PayoutLine(payout_id=payout.id, balance_transaction_id=t["id"], kind=_kind(t).value,
                              stripe_type=t["type"][:40], source_id=(t.get("source") or None),
                              gross_minor=t["amount"], fee_minor=t["fee"], net_minor=t["net"],
                              currency=t["currency"], stripe_created_at=datetime.fromtimestamp(t["created"], UTC))
            db.session.add(line)
            report.lines_new += 1
        else:
            line.payout_id = payout.id
        for name, value in links.get(t["id"], {}).items():
            if name == "ledger_entry_id" and value is not None and line.ledger_entry_id is None:
                if value in taken:
                    continue
                taken.add(value)
            if value is not None and getattr(line, name) is None:
                setattr(line, name, value)
                report.lines_linked += 1
    db.session.flush()
    diff = sum(t["net"] for t in txns) - payout.amount_minor
    if diff:
        report.flagged.append((po["id"], diff))


def _links(txns: list[dict], known: dict[str, int], charge_pi: dict[str, str]) -> dict[str, dict]:
    """balance transaction id -> payment, refund, ledger entry, enrollment and cohort ids."""
    by_txn = {t["id"]: t for t in txns}
    pay_ids = {known[t] for t in by_txn if t in known}
    pi_ids = {charge_pi[t["source"]] for t in txns if (t.get("source") or "") in charge_pi}
    re_ids = {t["source"] for t in txns if (t.get("source") or "").startswith(("re_", "pyr_"))}
    payments = {}
    if pay_ids or pi_ids:
        payments = {p.id: p for p in db.session.scalars(select(Payment).where(
            Payment.id.in_(pay_ids) | Payment.stripe_payment_intent_id.in_(pi_ids)))}
    by_pi = {p.stripe_payment_intent_id: p for p in payments.values()}
    refunds = {r.stripe_refund_id: r for r in db.session.scalars(
        select(Refund).where(Refund.stripe_refund_id.in_(re_ids)))} if re_ids else {}
    money_types = (LedgerType.CHARGE.value, LedgerType.REFUND.value, LedgerType.DISPUTE.value)
    objects = set(by_txn) | set(by_pi) | set(refunds)
    entries = {(e.entry_type, e.stripe_object_id): e for e in db.session.scalars(select(LedgerEntry).where(
        LedgerEntry.entry_type.in_(money_types), LedgerEntry.stripe_object_id.in_(objects)))} if objects else {}
    enr_cohort = {}
    enr_ids = {p.enrollment_id for p in payments.values()} | {r.enrollment_id for r in refunds.values()} | {
        e.enrollment_id for e in entries.values()}
    if enr_ids:
        enr_cohort = dict(db.session.execute(select(Enrollment.id, Enrollment.cohort_id).where(
            Enrollment.id.in_(enr_ids))).all())
    out: dict[str, dict] = {}
    for txn_id, t in by_txn.items():
        kind, src = _kind(t), t.get("source") or ""
        payment = refund = entry = None
        if kind == PayoutLineKind.CHARGE:
            payment = payments.get(known[txn_id]) if txn_id in known else by_pi.get(charge_pi.get(src, ""))
            if payment is not None:
                entry = entries.get((LedgerType.CHARGE.value, payment.stripe_payment_intent_id))
        elif kind == PayoutLineKind.REFUND:
            refund = refunds.get(src)
            entry = entries.get((LedgerType.REFUND.value, src))
        elif kind == PayoutLineKind.DISPUTE:
            entry = entries.get((LedgerType.DISPUTE.value, txn_id))
        enr_id = (payment.enrollment_id if payment else refund.enrollment_id if refund
                  else entry.enrollment_id if entry else None)
        out[txn_id] = {"payment_id": payment.id if payment else (refund.payment_id if refund else
                                                                   (entry.payment_id if entry else None)),
                       "refund_id": refund.id if refund else None,
                       "ledger_entry_id": entry.id if entry else None,
                       "enrollment_id": enr_id, "cohort_id": enr_cohort.get(enr_id)}
    return out


# --------------------------------------------------------------------------------------------
# reading: totals, list, detail
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    lines: int = 0
    gross: int = 0
    fee: int = 0
    net: int = 0


def totals(payout_ids: list[int]) -> dict[int, Totals]:
    """Sum of the lines of each payout (one query)."""
    if not payout_ids:
        return {}
    rows = db.session.execute(select(PayoutLine.payout_id, func.count(), func.sum(PayoutLine.gross_minor),
                                     func.sum(PayoutLine.fee_minor), func.sum(PayoutLine.net_minor))
                              .where(PayoutLine.payout_id.in_(payout_ids)).group_by(PayoutLine.payout_id))
    return {pid: Totals(int(n), int(g or 0), int(f or 0), int(net or 0)) for pid, n, g, f, net in rows}


def difference(payout: Payout, t: Totals | None) -> int:
    """Lines' net minus the payout's amount: 0 when the payout adds up."""
    return (t.net if t else 0) - payout.amount_minor


def list_statement():
    return select(Payout).order_by(Payout.arrival_date.desc(), Payout.id.desc())


def lines_with_people(payout: Payout) -> list[tuple[PayoutLine, str | None, str | None]]:
    """The payout's lines with participant name and cohort title (no clinical data)."""
    stmt = (select(PayoutLine, User.name, Cohort.title)
            .outerjoin(Enrollment, Enrollment.id == PayoutLine.enrollment_id)
            .outerjoin(User, User.id == Enrollment.participant_id)
            .outerjoin(Cohort, Cohort.id == PayoutLine.cohort_id)
            .where(PayoutLine.payout_id == payout.id)
            .order_by(PayoutLine.stripe_created_at, PayoutLine.id))
    return [(line, name, title) for line, name, title in db.session.execute(stmt)]


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

CSV_COLUMNS = ("date", "payout_arrival_date", "cohort", "participant", "type", "gross", "fee", "net", "currency",
               "stripe_balance_transaction_id", "stripe_source_id", "stripe_payment_intent_id", "stripe_refund_id",
               "payout_id", "payout_status")


@dataclass(frozen=True)
class PayoutFilter:
    """Payouts arriving between ``start`` and ``end`` (inclusive), one payout, or one cohort's lines."""

    tz: str = "UTC"
    start: date | None = None
    end: date | None = None
    cohort_id: int | None = None
    payout_id: int | None = None


def csv_statement(flt: PayoutFilter):
    stmt = (select(PayoutLine.stripe_created_at, Payout.arrival_date, Cohort.title, User.name, PayoutLine.kind,
                   PayoutLine.gross_minor, PayoutLine.fee_minor, PayoutLine.net_minor, PayoutLine.currency,
                   PayoutLine.balance_transaction_id, PayoutLine.source_id, Payment.stripe_payment_intent_id,
                   Refund.stripe_refund_id, Payout.stripe_payout_id, Payout.status)
            .join(Payout, Payout.id == PayoutLine.payout_id)
            .outerjoin(Enrollment, Enrollment.id == PayoutLine.enrollment_id)
            .outerjoin(User, User.id == Enrollment.participant_id)
            .outerjoin(Cohort, Cohort.id == PayoutLine.cohort_id)
            .outerjoin(Payment, Payment.id == PayoutLine.payment_id)
            .outerjoin(Refund, Refund.id == PayoutLine.refund_id)
            .order_by(Payout.arrival_date, Payout.id, PayoutLine.stripe_created_at, PayoutLine.id))
    if flt.start:
        stmt = stmt.where(Payout.arrival_date >= flt.start)
    if flt.end:
        stmt = stmt.where(Payout.arrival_date <= flt.end)
    if flt.cohort_id is not None:
        stmt = stmt.where(PayoutLine.cohort_id == flt.cohort_id)
    if flt.payout_id is not None:
        stmt = stmt.where(Payout.id == flt.payout_id)
    return stmt.execution_options(yield_per=BATCH)


def csv_rows(flt: PayoutFilter) -> Iterator[list[str]]:
    """Header, then one row per line: gross, fee (negative: what Stripe took), net = gross + fee."""
    yield list(CSV_COLUMNS)
    for (at, arrival, cohort, name, kind, gross, fee, net, cur, txn, src, pi_id, re_id, po_id,
         status) in db.session.execute(csv_statement(flt)):
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        yield [to_local(at, flt.tz).date().isoformat(), arrival.isoformat(), cohort or "", name or "", kind,
               decimal_string(gross, cur), decimal_string(-fee, cur), decimal_string(net, cur), cur, txn, src or "",
               pi_id or "", re_id or "", po_id, status]


def csv_text(flt: PayoutFilter) -> Iterator[str]:
    """The CSV in chunks of about ``BATCH`` lines, with the ledger export's formula-injection guard."""
    return csv_stream(csv_rows(flt))


def csv_filename(flt: PayoutFilter, payout: Payout | None = None) -> str:
    if payout is not None:
        return f"payout-{payout.stripe_payout_id}.csv"
    parts = ["payouts"] + [d.isoformat() for d in (flt.start, flt.end) if d]
    if flt.cohort_id is not None:
        parts.append(f"cohort-{flt.cohort_id}")
    return "-".join(parts) + ".csv"


jobs.register("finance.payouts_requested", sync_requested, seconds=60)
