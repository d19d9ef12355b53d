"""Stripe reconciliation: is every dollar in Stripe in the ledger, and every ledger dollar in Stripe?

A run streams through what Stripe holds for a window of time (``since`` .. ``until``), one page
of at most 100 objects at a time, and matches each money object to the ledger by its Stripe
object id (charges by PaymentIntent id, refunds by refund id, Stripe fees and disputes by their
balance transaction id) and by the enrollment in the PaymentIntent metadata:

1. charges (with the PaymentIntent expanded, for its metadata),
2. refunds,
3. balance transactions: Stripe fees (``fee`` of any transaction) and disputes,
4. payouts (counted; what each contains is the payouts pages' business),
5. the ledger side: entries recorded in the window that no Stripe object matched are looked up
   in Stripe one by one; those Stripe does not know are "missing in Stripe".

Memory stays flat: one page of Stripe objects at a time, the ledger looked up per page by the ids
on that page (never the whole ledger), items written in one batch per page, and the ledger side
found with an anti-join, in keyset chunks. ``execute`` commits after every page (no transaction is
open while Stripe is called, and the progress is visible to the run page meanwhile).

An item in Stripe but not in the ledger (a missed webhook) is repaired by ``repair``, which
builds the Stripe event the webhook would have carried and hands it to
``stripe_events.handle``: the same code path, which re-fetches the object from Stripe. Every
repair is audited; an item repaired once is refused a second time.

A finished run keeps a ``cursor``: the creation time of its oldest open problem (or its end when
there is none). The next run without an explicit ``since`` starts there, so problems are
re-checked until resolved, and ``compare`` tells what appeared, was resolved or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, selectinload

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import Enrollment
from retreat.core import jobs
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from retreat.core.pagination import Page, paginate
from retreat.extensions import db
from retreat.finance import stripe_events
from retreat.finance.reconciliation_models import (
    ItemCategory,
    ItemKind,
    ReconciliationItem,
    ReconciliationRun,
    RunStatus,
)
from retreat.money import format_money
from retreat.payments import gateway, ledger, listing
from retreat.payments.models import LedgerEntry, LedgerType, Payment
from retreat.timeutil import now_utc

PAGE_SIZE = 100
LEDGER_CHUNK = 200
STALE_AFTER = timedelta(minutes=15)  # a running run with no heartbeat for this long died
STRIPE_PREFIXES = ("pi_", "ch_", "py_", "re_", "pyr_", "txn_", "du_", "dp_")
DISPUTE_CATEGORIES = ("dispute", "dispute_reversal")
PROBLEMS = (ItemCategory.MISSING_IN_LEDGER, ItemCategory.MISSING_IN_STRIPE, ItemCategory.MISMATCH)
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

Progress = Callable[[int, int], None]  # (done, total)


def _noop(done: int, total: int) -> None:
    return None


class Interrupted(DomainError):
    """The process running the run is shutting down; the run is failed and can be run again."""

    status = 503


# --------------------------------------------------------------------------------------------
# Queueing and claiming runs
# --------------------------------------------------------------------------------------------


def check_window(since: datetime | None, until: datetime | None, *, now: datetime) -> None:
    if since is not None and since > now:
        raise ValidationFailed("The start date is in the future: nothing can be reconciled yet.", field="since")
    if since is not None and until is not None and until < since:
        raise ValidationFailed("The end date is before the start date.", field="until")


def active_run() -> ReconciliationRun | None:
    return db.session.scalar(select(ReconciliationRun).where(ReconciliationRun.active_slot.is_(True)))


def last_done_run() -> ReconciliationRun | None:
    return db.session.scalar(select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.DONE.value)
                             .order_by(ReconciliationRun.finished_at.desc(), ReconciliationRun.id.desc()).limit(1))


def default_since() -> datetime | None:
    """Where a run with no explicit start begins: the last finished run's cursor (None: all of Stripe)."""
    last = last_done_run()
    return last.cursor if last is not None else None


def fail_stale(*, now: datetime) -> int:
    """Runs whose worker died (no heartbeat for ``STALE_AFTER``) are failed, freeing the slot."""
    limit = now - STALE_AFTER
    stale = list(db.session.scalars(select(ReconciliationRun).where(
        ReconciliationRun.status == RunStatus.RUNNING.value,
        func.coalesce(ReconciliationRun.heartbeat_at, ReconciliationRun.started_at) < limit).with_for_update()))
    for run in stale:
        run.status = RunStatus.FAILED.value
        run.active_slot = None
        run.error = "Interrupted: the process running it stopped."
        run.finished_at = now
    return len(stale)


def queue(*, since: datetime | None, until: datetime | None, now: datetime, actor: User | None,
          ctx: RequestContext | None = None, start: bool = False) -> tuple[ReconciliationRun, bool]:
    """A new run (queued, or running at once with ``start``), or the one already queued or running
    and False. Caller commits."""
    check_window(since, until, now=now)
    fail_stale(now=now)
    existing = active_run()
    if existing is not None:
        return existing, False
    if since is None:
        since = default_since()
        if since is not None and until is not None and until < since:
            raise ValidationFailed("The end date is before where the last run stopped "
                                   f"({since:%Y-%m-%d %H:%M} UTC): give a start date.", field="until")
    run = ReconciliationRun(status=(RunStatus.RUNNING if start else RunStatus.QUEUED).value, active_slot=True,
                            since=since, until=until, requested_by_id=actor.id if actor else None,
                            requested_at=now, started_at=now if start else None, heartbeat_at=now if start else None,
                            phase="" if start else "queued")
    try:
        with db.session.begin_nested():
            db.session.add(run)
            db.session.flush()
    except IntegrityError:  # another request queued one at the same moment
        existing = active_run()
        if existing is None:
            raise
        return existing, False
    audit.record("finance.reconciliation_queued", actor=actor, object_type="reconciliation_run", object_id=run.id,
                 ctx=ctx, now=now, details={"since": since.isoformat() if since else None,
                                            "until": until.isoformat() if until else None})
    return run, True


def claim(run_id: int, *, now: datetime) -> bool:
    """Queued -> running, once (a conditional update). Caller commits."""
    result = db.session.execute(update(ReconciliationRun).where(
        ReconciliationRun.id == run_id, ReconciliationRun.status == RunStatus.QUEUED.value).values(
        status=RunStatus.RUNNING.value, started_at=now, heartbeat_at=now, phase="starting"))
    return result.rowcount == 1


def run_queued(*, now: datetime, should_stop: Callable[[], bool] | None = None) -> int:
    """The scheduler job: run the oldest queued run, if any. Commits. Returns how many ran."""
    fail_stale(now=now)
    run_id = db.session.scalar(select(ReconciliationRun.id).where(
        ReconciliationRun.status == RunStatus.QUEUED.value).order_by(ReconciliationRun.id).limit(1))
    if run_id is None or not claim(run_id, now=now):
        db.session.commit()
        return 0
    db.session.commit()
    execute(run_id, now=now, should_stop=should_stop)
    return 1


def run(*, since: datetime | None = None, until: datetime | None = None, now: datetime,
        actor: User | None = None, progress: Progress | None = None,
        page_size: int = PAGE_SIZE) -> ReconciliationRun:
    """Start a run now (refused while another is queued or running) and execute it. Commits."""
    started, created = queue(since=since, until=until, now=now, actor=actor, start=True)
    if not created:
        db.session.rollback()
        raise Conflict(f"Reconciliation run #{started.id} is already {started.status}; wait for it to finish.")
    db.session.commit()
    return execute(started.id, now=now, progress=progress, page_size=page_size)


# --------------------------------------------------------------------------------------------
# Executing a run
# --------------------------------------------------------------------------------------------


@dataclass
class _Ledger:
    id: int
    amount: int
    currency: str
    enrollment_id: int
    cohort_id: int | None
    created_at: datetime


def _ledger_by_object(entry_type: LedgerType, object_ids: Iterable[str]) -> dict[str, _Ledger]:
    ids = sorted({i for i in object_ids if i})
    if not ids:
        return {}
    rows = db.session.execute(
        select(LedgerEntry.stripe_object_id, LedgerEntry.id, LedgerEntry.amount_minor, LedgerEntry.currency,
               LedgerEntry.enrollment_id, Enrollment.cohort_id, LedgerEntry.created_at)
        .join(Enrollment, Enrollment.id == LedgerEntry.enrollment_id)
        .where(LedgerEntry.entry_type == entry_type.value, LedgerEntry.stripe_object_id.in_(ids)))
    return {r[0]: _Ledger(*r[1:]) for r in rows}


def _enrollment_cohorts(ids: Iterable[int]) -> dict[int, int]:
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    return dict(db.session.execute(select(Enrollment.id, Enrollment.cohort_id).where(Enrollment.id.in_(ids))).all())


def _payments_for_intents(pi_ids: Iterable[str]) -> dict[str, tuple[int, int, datetime | None]]:
    """PaymentIntent id -> (payment id, enrollment id, disputed_at) for the payments we made."""
    ids = sorted({i for i in pi_ids if i})
    if not ids:
        return {}
    rows = db.session.execute(select(Payment.stripe_payment_intent_id, Payment.id, Payment.enrollment_id,
                                     Payment.disputed_at).where(Payment.stripe_payment_intent_id.in_(ids)))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _payments_by_metadata(charges: Iterable[dict]) -> dict[str, tuple[int, int, datetime | None]]:
    """PaymentIntent id -> payment, for intents whose id never got stored on our payment (a crash
    between Stripe and our commit): found by the payment id in the metadata, as the webhook does."""
    wanted = {}
    for c in charges:
        raw = str((c.get("metadata") or {}).get("payment", ""))
        if c.get("payment_intent") and raw.isdigit() and len(raw) < 12:
            wanted[int(raw)] = c["payment_intent"]
    if not wanted:
        return {}
    rows = db.session.execute(select(Payment.id, Payment.enrollment_id, Payment.disputed_at,
                                     Payment.stripe_payment_intent_id).where(Payment.id.in_(sorted(wanted))))
    return {wanted[r[0]]: (r[0], r[1], r[2]) for r in rows if r[3] in (None, wanted[r[0]])}


def _meta_enrollment(metadata: dict) -> int | None:
    raw = str((metadata or {}).get("enrollment", ""))
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


def _item(run_id: int, category: ItemCategory, kind: ItemKind, key: str, stripe_id: str, *, stripe_type: str = "",
          pi: str | None = None, created: datetime | None = None, stripe_amount: int | None = None,
          stripe_currency: str | None = None, entry: _Ledger | None = None, enrollment_id: int | None = None,
          cohort_id: int | None = None, note: str = "", repairable: bool = False,
          is_open: bool | None = None) -> dict:
    if is_open is None:
        is_open = category in PROBLEMS
    return {"run_id": run_id, "category": category.value, "kind": kind.value, "match_key": f"{kind.value}:{key}"[:100],
            "stripe_object_id": stripe_id[:80], "stripe_type": stripe_type[:40], "payment_intent_id": pi,
            "stripe_created": created, "stripe_amount_minor": stripe_amount,
            "stripe_currency": stripe_currency or None, "ledger_entry_id": entry.id if entry else None,
            "ledger_amount_minor": entry.amount if entry else None, "ledger_currency": entry.currency if entry else None,
            "enrollment_id": entry.enrollment_id if entry else enrollment_id,
            "cohort_id": entry.cohort_id if entry else cohort_id, "note": note[:300], "repairable": repairable,
            "is_open": is_open, "repaired_at": None, "repaired_by_id": None}


def _compare(amount: int, currency: str, entry: _Ledger, *, meta_enrollment: int | None = None) -> str:
    """What differs between Stripe and the ledger entry ('' when nothing does)."""
    problems = []
    if amount != entry.amount:
        problems.append(f"amount: Stripe {format_money(amount, currency or entry.currency)}, "
                        f"ledger {format_money(entry.amount, entry.currency)}")
    if currency and currency != entry.currency:
        problems.append(f"currency: Stripe {currency}, ledger {entry.currency}")
    if meta_enrollment is not None and meta_enrollment != entry.enrollment_id:
        problems.append(f"enrollment: Stripe metadata #{meta_enrollment}, ledger #{entry.enrollment_id}")
    return "; ".join(problems)


class _Runner:
    def __init__(self, run: ReconciliationRun, *, progress: Progress, page_size: int, clock: Callable[[], datetime],
                 should_stop: Callable[[], bool] | None = None):
        self.should_stop = should_stop or (lambda: False)
        self.run_id = run.id
        self.since = run.since
        self.until = run.until
        self.progress = progress
        self.page_size = page_size
        self.clock = clock
        self.done = 0
        self.total = 0
        self.payouts = 0

    # -- bookkeeping ------------------------------------------------------------------------

    def estimate(self) -> int:
        stmt = select(LedgerEntry.entry_type, func.count()).where(
            LedgerEntry.entry_type.in_([LedgerType.CHARGE.value, LedgerType.REFUND.value, LedgerType.DISPUTE.value]))
        if self.since is not None:
            stmt = stmt.where(LedgerEntry.created_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(LedgerEntry.created_at <= self.until)
        counts = dict(db.session.execute(stmt.group_by(LedgerEntry.entry_type)).all())
        charges, refunds = counts.get("charge", 0), counts.get("refund", 0)
        # charges and refunds are listed once as objects and once as balance transactions
        return 2 * (charges + refunds) + counts.get("dispute", 0)

    def save(self, rows: list[dict], seen: int, phase: str) -> None:
        if rows:
            db.session.execute(insert(ReconciliationItem), rows)
        if self.should_stop():
            raise Interrupted("Interrupted: the process running it was stopping. Run it again.")
        self.done += seen
        self.total = max(self.total, self.done)
        db.session.execute(update(ReconciliationRun).where(ReconciliationRun.id == self.run_id).values(
            progress_done=self.done, progress_total=self.total, objects_seen=self.done, phase=phase,
            payouts_count=self.payouts, heartbeat_at=self.clock()))
        db.session.commit()
        self.progress(self.done, self.total)

    def window(self) -> dict:
        return {"since": self.since, "until": self.until, "page_size": self.page_size}

    # -- 1. charges -------------------------------------------------------------------------

    def charges(self, page: list[dict]) -> list[dict]:
        paid = [c for c in page if c["status"] == "succeeded" and c["paid"] and c["captured"]]
        keys = {c["id"]: c["payment_intent"] or c["id"] for c in paid}
        found = _ledger_by_object(LedgerType.CHARGE, keys.values())
        unknown = [c for c in paid if keys[c["id"]] not in found]
        ours = {**_payments_by_metadata(unknown), **_payments_for_intents(c["payment_intent"] for c in unknown)}
        enr_cohort = _enrollment_cohorts(_meta_enrollment(c["metadata"]) for c in paid)
        rows = []
        for c in paid:
            key = keys[c["id"]]
            entry = found.get(key)
            meta_enr = _meta_enrollment(c["metadata"])
            base = {"stripe_type": "charge", "pi": c["payment_intent"], "created": listing.created_at(c),
                    "stripe_amount": c["amount_captured"], "stripe_currency": c["currency"]}
            if entry is None:
                payment = ours.get(c["payment_intent"] or "")
                enr_id = payment[1] if payment else (meta_enr if meta_enr in enr_cohort else None)
                note = ("Paid in Stripe but not in the ledger: its webhook was never applied."
                        if payment else "Paid in Stripe, but no payment here has this PaymentIntent.")
                rows.append(_item(self.run_id, ItemCategory.MISSING_IN_LEDGER, ItemKind.CHARGE, key, c["id"],
                                  enrollment_id=enr_id, cohort_id=enr_cohort.get(enr_id) if enr_id else None,
                                  note=note, repairable=payment is not None, **base))
                continue
            problem = _compare(c["amount_captured"], c["currency"], entry, meta_enrollment=meta_enr)
            category = ItemCategory.MISMATCH if problem else ItemCategory.MATCHED
            rows.append(_item(self.run_id, category, ItemKind.CHARGE, key, c["id"], entry=entry, note=problem, **base))
        return rows

    # -- 2. refunds -------------------------------------------------------------------------

    def refunds(self, page: list[dict]) -> list[dict]:
        done = [r for r in page if r["status"] == "succeeded"]
        found = _ledger_by_object(LedgerType.REFUND, (r["id"] for r in done))
        ours = _payments_for_intents(r["payment_intent"] for r in done if r["id"] not in found)
        rows = []
        for r in done:
            entry = found.get(r["id"])
            base = {"stripe_type": "refund", "pi": r["payment_intent"], "created": listing.created_at(r),
                    "stripe_amount": -r["amount"], "stripe_currency": r["currency"]}
            if entry is None:
                payment = ours.get(r["payment_intent"] or "")
                note = ("Refunded in Stripe but not in the ledger: its webhook was never applied."
                        if payment else "Refunded in Stripe, but no payment here has its PaymentIntent.")
                enr_id = payment[1] if payment else None
                rows.append(_item(self.run_id, ItemCategory.MISSING_IN_LEDGER, ItemKind.REFUND, r["id"], r["id"],
                                  enrollment_id=enr_id, cohort_id=_enrollment_cohorts([enr_id]).get(enr_id) if enr_id
                                  else None, note=note, repairable=payment is not None, **base))
                continue
            problem = _compare(-r["amount"], r["currency"], entry)
            rows.append(_item(self.run_id, ItemCategory.MISMATCH if problem else ItemCategory.MATCHED,
                              ItemKind.REFUND, r["id"], r["id"], entry=entry, note=problem, **base))
        return rows

    # -- 3. balance transactions: fees and disputes ------------------------------------------

    @staticmethod
    def is_dispute(t: dict) -> bool:
        return (t["reporting_category"] in DISPUTE_CATEGORIES or t["type"] in DISPUTE_CATEGORIES
                or (t["type"] == "adjustment" and (t["source"] or "").startswith(("du_", "dp_"))))

    def _intent_of_source(self, source: str | None) -> tuple[str | None, dict | None]:
        """(PaymentIntent id, dispute) behind a balance transaction's source, asked of Stripe (only
        for the few transactions that need it: disputes and fees missing from the ledger)."""
        if not source:
            return None, None
        if source.startswith(("du_", "dp_")):
            dispute = listing.retrieve_dispute(source)
            if dispute is None:
                return None, None
            if dispute["payment_intent"]:
                return dispute["payment_intent"], dispute
            charge = listing.retrieve_charge(dispute["charge"]) if dispute["charge"] else None
            return (charge or {}).get("payment_intent"), dispute
        if source.startswith(("ch_", "py_")):
            return (listing.retrieve_charge(source) or {}).get("payment_intent"), None
        if source.startswith(("re_", "pyr_")):
            return (listing.retrieve_refund(source) or {}).get("payment_intent"), None
        return None, None

    def balance_transactions(self, page: list[dict]) -> list[dict]:
        with_fee = [t for t in page if t["fee"]]
        disputes = [t for t in page if self.is_dispute(t)]
        fees = _ledger_by_object(LedgerType.FEE, (t["id"] for t in with_fee))
        dispute_entries = _ledger_by_object(LedgerType.DISPUTE, (t["id"] for t in disputes))
        db.session.commit()  # Stripe may be asked below: no transaction open meanwhile
        dispute_ids = {t["id"] for t in disputes}
        lookups = {t["id"]: self._intent_of_source(t["source"])
                   for t in page if t["id"] in dispute_ids or (t["fee"] and t["id"] not in fees)}
        ours = _payments_for_intents(pi for pi, _ in lookups.values())
        rows = []
        for t in with_fee:
            entry = fees.get(t["id"])
            pi = lookups.get(t["id"], (None, None))[0]
            base = {"stripe_type": t["type"], "pi": pi, "created": listing.created_at(t),
                    "stripe_amount": -t["fee"], "stripe_currency": t["currency"]}
            if entry is None:
                payment = ours.get(pi or "")
                rows.append(_item(self.run_id, ItemCategory.MISSING_IN_LEDGER, ItemKind.FEE, t["id"], t["id"],
                                  enrollment_id=payment[1] if payment else None,
                                  cohort_id=_enrollment_cohorts([payment[1]]).get(payment[1]) if payment else None,
                                  note=f"Stripe fee on a {t['type']} not in the ledger.",
                                  # a charge's fee is recorded with the charge's success; other fees not
                                  repairable=payment is not None and t["type"] in ("charge", "payment"),
                                  **base))
                continue
            problem = _compare(-t["fee"], t["currency"], entry)
            rows.append(_item(self.run_id, ItemCategory.MISMATCH if problem else ItemCategory.MATCHED, ItemKind.FEE,
                              t["id"], t["id"], entry=entry, note=problem, **base))
        for t in disputes:
            entry = dispute_entries.get(t["id"])
            pi, dispute = lookups.get(t["id"], (None, None))
            payment = ours.get(pi or "")
            known = entry is not None or (payment is not None and payment[2] is not None)
            parts = [f"Dispute {dispute['id']}" if dispute else "Dispute"]
            if dispute:
                parts.append(f"{dispute['status'] or 'open'}, reason {dispute['reason'] or 'not given'}")
            if entry is not None:
                problem = _compare(t["amount"], t["currency"], entry)
                parts.append(f"in the ledger{' but ' + problem if problem else ''}")
            elif known:
                parts.append("recorded on the payment")
            else:
                parts.append("not recorded here")
            enr_id = entry.enrollment_id if entry else (payment[1] if payment else None)
            rows.append(_item(self.run_id, ItemCategory.DISPUTE, ItemKind.DISPUTE, t["id"], t["id"],
                              stripe_type=t["reporting_category"] or t["type"], pi=pi, created=listing.created_at(t),
                              stripe_amount=t["amount"], stripe_currency=t["currency"], entry=entry,
                              enrollment_id=enr_id, cohort_id=_enrollment_cohorts([enr_id]).get(enr_id) if enr_id
                              else None, note="; ".join(parts), repairable=not known and payment is not None,
                              is_open=not known))
        return rows

    # -- 5. the ledger side -------------------------------------------------------------------

    def _unmatched_ledger(self, after_id: int) -> list[tuple]:
        matched = aliased(ReconciliationItem)
        stmt = (select(LedgerEntry.id, LedgerEntry.entry_type, LedgerEntry.stripe_object_id, LedgerEntry.amount_minor,
                       LedgerEntry.currency, LedgerEntry.enrollment_id, Enrollment.cohort_id, LedgerEntry.created_at)
                .join(Enrollment, Enrollment.id == LedgerEntry.enrollment_id)
                .outerjoin(matched, and_(matched.run_id == self.run_id, matched.ledger_entry_id == LedgerEntry.id))
                .where(matched.id.is_(None), LedgerEntry.id > after_id,
                       LedgerEntry.entry_type.in_([t.value for t in (LedgerType.CHARGE, LedgerType.REFUND,
                                                                     LedgerType.FEE, LedgerType.DISPUTE)]))
                .order_by(LedgerEntry.id).limit(LEDGER_CHUNK))
        if self.since is not None:
            stmt = stmt.where(LedgerEntry.created_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(LedgerEntry.created_at <= self.until)
        return list(db.session.execute(stmt).all())

    def _in_stripe(self, entry_type: str, object_id: str) -> tuple[int, str, str] | None:
        """(amount as the ledger signs it, currency, status) of the object in Stripe, or None."""
        if not object_id.startswith(STRIPE_PREFIXES):
            return None
        if entry_type == LedgerType.CHARGE.value:
            if object_id.startswith("pi_"):
                pi = listing.retrieve_payment_intent(object_id)
                return (pi["amount"], pi["currency"], pi["status"]) if pi else None
            ch = listing.retrieve_charge(object_id)
            return (ch["amount_captured"], ch["currency"], ch["status"]) if ch else None
        if entry_type == LedgerType.REFUND.value:
            r = listing.retrieve_refund(object_id)
            return (-r["amount"], r["currency"], r["status"]) if r else None
        t = listing.retrieve_balance_transaction(object_id) if object_id.startswith("txn_") else None
        if t is None:
            return None
        return (-t["fee"] if entry_type == LedgerType.FEE.value else t["amount"]), t["currency"], "succeeded"

    def ledger_side(self) -> None:
        after = 0
        while True:
            chunk = self._unmatched_ledger(after)
            if not chunk:
                return
            after = chunk[-1][0]
            db.session.commit()  # Stripe is asked below: no transaction open meanwhile
            rows = []
            for (le_id, etype, obj_id, amount, cur, enr_id, cohort_id, created) in chunk:
                entry = _Ledger(le_id, amount, cur, enr_id, cohort_id, created)
                kind = ItemKind(etype)
                found = self._in_stripe(etype, obj_id)
                if found is None:
                    rows.append(_item(self.run_id, ItemCategory.MISSING_IN_STRIPE, kind, obj_id, obj_id,
                                      created=created, entry=entry,
                                      note="In the ledger, but Stripe has no such object."))
                    continue
                s_amount, s_cur, status = found
                problem = _compare(s_amount, s_cur, entry)
                if status != "succeeded":
                    problem = "; ".join(p for p in (f"Stripe says it is {status}", problem) if p)
                category = ItemCategory.MISMATCH if problem else ItemCategory.MATCHED
                rows.append(_item(self.run_id, category, kind, obj_id, obj_id, created=created, entry=entry,
                                  stripe_amount=s_amount, stripe_currency=s_cur,
                                  note=problem or "Created in Stripe before this run's window."))
            self.save(rows, 0, "ledger")

    # -- all of it ----------------------------------------------------------------------------

    def execute(self) -> None:
        self.total = self.estimate()
        db.session.commit()
        self.progress(0, self.total)
        for page in listing.charge_pages(**self.window()):
            self.save(self.charges(page), len(page), "charges")
        for page in listing.refund_pages(**self.window()):
            self.save(self.refunds(page), len(page), "refunds")
        for page in listing.balance_transaction_pages(**self.window()):
            self.save(self.balance_transactions(page), len(page), "balance transactions")
        for page in listing.payout_pages(**self.window()):
            self.payouts += len(page)
            self.save([], len(page), "payouts")
        self.ledger_side()


def execute(run_id: int, *, now: datetime, progress: Progress | None = None, page_size: int = PAGE_SIZE,
            clock: Callable[[], datetime] = now_utc, should_stop: Callable[[], bool] | None = None
            ) -> ReconciliationRun:
    """Do a claimed (running) run. Commits after every page; a failure marks the run failed
    (a Stripe error is kept as the run's error; anything else is raised after that)."""
    the_run = db.session.get(ReconciliationRun, run_id)
    if the_run is None:
        raise NotFound("No such reconciliation run.")
    if the_run.status != RunStatus.RUNNING:
        raise Conflict(f"Reconciliation run #{run_id} is {the_run.status}, not running.")
    if the_run.until is None:
        the_run.until = the_run.started_at or now  # the window is fixed when the run starts
    the_run.started_at = the_run.started_at or now
    db.session.commit()
    runner = _Runner(the_run, progress=progress or _noop, page_size=page_size, clock=clock, should_stop=should_stop)
    try:
        runner.execute()
    except Exception as exc:
        db.session.rollback()
        failed = db.session.get(ReconciliationRun, run_id)
        failed.status = RunStatus.FAILED.value
        failed.active_slot = None
        failed.error = (getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")[:2000]
        failed.finished_at = clock()
        failed.progress_done, failed.progress_total = runner.done, max(runner.total, runner.done)
        db.session.commit()
        if isinstance(exc, (gateway.GatewayError, Interrupted)):
            return failed
        raise
    return _finish(run_id, runner, clock())


def _finish(run_id: int, runner: _Runner, at: datetime) -> ReconciliationRun:
    counts = dict(db.session.execute(select(ReconciliationItem.category, func.count()).where(
        ReconciliationItem.run_id == run_id).group_by(ReconciliationItem.category)).all())
    oldest_open = db.session.scalar(select(func.min(ReconciliationItem.stripe_created)).where(
        ReconciliationItem.run_id == run_id, ReconciliationItem.is_open.is_(True)))
    the_run = db.session.get(ReconciliationRun, run_id)
    for cat in ItemCategory:
        setattr(the_run, f"{cat.value}_count", int(counts.get(cat.value, 0)))
    the_run.cursor = min(oldest_open, the_run.until) if oldest_open else the_run.until
    the_run.status = RunStatus.DONE.value
    the_run.active_slot = None
    the_run.phase = "done"
    the_run.objects_seen = runner.done
    the_run.payouts_count = runner.payouts
    the_run.progress_done = the_run.progress_total = runner.done
    the_run.finished_at = at
    the_run.heartbeat_at = at
    db.session.commit()
    runner.progress(runner.done, runner.done)
    return the_run


# --------------------------------------------------------------------------------------------
# Repair: a missed webhook applied through the webhook's own code path
# --------------------------------------------------------------------------------------------


def _event_for(item: ReconciliationItem) -> dict:
    event_id = f"evt_reconcile_repair_{item.id}"
    if item.kind in (ItemKind.CHARGE, ItemKind.FEE):
        ev_type, obj = "payment_intent.succeeded", {"id": item.payment_intent_id, "object": "payment_intent"}
    elif item.kind == ItemKind.REFUND:
        ev_type, obj = "refund.created", {"id": item.stripe_object_id, "object": "refund",
                                          "payment_intent": item.payment_intent_id}
    else:  # the item is the dispute's balance transaction; the event is about the dispute (its source)
        dispute_id = gateway.retrieve_balance_transaction(item.stripe_object_id).get("source") or ""
        ev_type, obj = "charge.dispute.created", {"id": dispute_id, "object": "dispute",
                                                  "payment_intent": item.payment_intent_id,
                                                  "amount": abs(item.stripe_amount_minor or 0)}
    return {"id": event_id, "object": "event", "type": ev_type, "data": {"object": obj}, "livemode": False}


def _recorded(item: ReconciliationItem) -> int | None:
    """The ledger entry (id) that now records the item's Stripe object, or None. For a dispute the
    payment marked disputed counts too (0)."""
    key = item.match_key.split(":", 1)[1]
    entry = ledger.find(LedgerType(item.kind), key)
    if entry is not None:
        return entry.id
    if item.kind == ItemKind.DISPUTE and item.payment_intent_id:
        disputed = db.session.scalar(select(Payment.disputed_at).where(
            Payment.stripe_payment_intent_id == item.payment_intent_id))
        return 0 if disputed is not None else None
    return None


def _refusal(item: ReconciliationItem) -> str | None:
    if item.repaired_at is not None:
        who = item.repaired_by.name if item.repaired_by else "someone"
        return (f"This item was already repaired on {item.repaired_at:%Y-%m-%d %H:%M} UTC by {who}; "
                "nothing was changed.")
    if item.category == ItemCategory.MATCHED:
        return "This item matches the ledger: there is nothing to repair."
    if item.category in (ItemCategory.MISSING_IN_STRIPE, ItemCategory.MISMATCH):
        return ("Only what is in Stripe but missing from the ledger can be repaired here; the ledger is "
                "append-only, so a difference like this one needs an adjustment by finance.")
    if item.category == ItemCategory.DISPUTE and not item.is_open:
        return "This dispute is already recorded here: there is nothing to repair."
    if not item.repairable or not item.payment_intent_id:
        return ("This Stripe object cannot be repaired here: no payment made through this platform has its "
                "PaymentIntent.")
    if item.run.status != RunStatus.DONE:
        return "Wait for the run to finish before repairing its items."
    return None


def repair(item_id: int, *, now: datetime, actor: User | None, ctx: RequestContext | None = None
           ) -> ReconciliationItem:
    """Apply a missed webhook for ``item_id`` through ``stripe_events.handle``. Audited.

    Refused (nothing changed) when the item was repaired already, is not repairable, or the
    ledger meanwhile has the object. Commits the webhook's own work; the caller commits the rest.
    """
    item = db.session.get(ReconciliationItem, item_id)
    if item is None:
        raise NotFound("No such reconciliation item.")
    refusal = _refusal(item)
    if refusal:
        raise Conflict(refusal)
    if _recorded(item) is not None:
        raise Conflict("The ledger already records this Stripe object (its webhook arrived after the run): "
                       "nothing to repair. Run a reconciliation again to see it matched.")
    db.session.commit()  # no transaction (or lock) while Stripe is called, here or in the webhook code
    event = _event_for(item)
    outcome = stripe_events.handle(event, now=now)
    item = db.session.scalar(select(ReconciliationItem).where(ReconciliationItem.id == item_id).with_for_update()
                             .execution_options(populate_existing=True))
    if item.repaired_at is not None:  # a concurrent click repaired it first
        raise Conflict(_refusal(item) or "Already repaired.")
    entry_id = _recorded(item)
    if entry_id is None:
        raise Conflict(f"Applying the Stripe event did not record it (webhook outcome: {outcome}); "
                       "nothing was marked repaired.")
    item.repaired_at = now
    item.repaired_by_id = actor.id if actor else None
    item.is_open = False
    if entry_id:
        entry = db.session.get(LedgerEntry, entry_id)
        item.ledger_entry_id = entry_id
        item.ledger_amount_minor, item.ledger_currency = entry.amount_minor, entry.currency
    audit.record("finance.reconciliation_repaired", actor=actor, object_type="reconciliation_item",
                 object_id=item.id, ctx=ctx, now=now,
                 details={"run": item.run_id, "kind": item.kind, "category": item.category,
                          "stripe_object_id": item.stripe_object_id, "payment_intent": item.payment_intent_id,
                          "event": event["id"], "outcome": outcome, "ledger_entry": entry_id or None})
    return item


# --------------------------------------------------------------------------------------------
# Reading runs: the report and the comparison of two runs
# --------------------------------------------------------------------------------------------


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


def counts(the_run: ReconciliationRun) -> dict[str, int]:
    """Items per category: the saved totals of a finished run, counted live while it runs."""
    if the_run.status == RunStatus.DONE:
        return {c: the_run.count_of(c) for c in CATEGORY_ORDER}
    found = dict(db.session.execute(select(ReconciliationItem.category, func.count()).where(
        ReconciliationItem.run_id == the_run.id).group_by(ReconciliationItem.category)).all())
    return {c: int(found.get(c, 0)) for c in CATEGORY_ORDER}


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


def run_queued_job(now: datetime) -> int:
    """The scheduler's job: queued runs, stopping between batches when the scheduler shuts down."""
    return run_queued(now=now, should_stop=jobs.stopping)


jobs.register("finance.reconcile_queued", run_queued_job, seconds=10)
