"""What a reconciliation compares: Stripe's objects, a page at a time, against the ledger.

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
found with an anti-join, in keyset chunks. ``Runner.save`` commits after every page (no
transaction is open while Stripe is called, and the progress is visible to the run page meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import aliased

from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.finance.reconciliation_models import (
    ItemCategory,
    ItemKind,
    ReconciliationItem,
    ReconciliationRun,
)
from retreat.money import format_money
from retreat.payments import listing
from retreat.payments.models import LedgerEntry, LedgerType, Payment

PAGE_SIZE = 100
LEDGER_CHUNK = 200
STRIPE_PREFIXES = ("pi_", "ch_", "py_", "re_", "pyr_", "txn_", "du_", "dp_")
DISPUTE_CATEGORIES = ("dispute", "dispute_reversal")
PROBLEMS = (ItemCategory.MISSING_IN_LEDGER, ItemCategory.MISSING_IN_STRIPE, ItemCategory.MISMATCH)

Progress = Callable[[int, int], None]  # (done, total)


class Interrupted(DomainError):
    """The process running the run is shutting down; the run is failed and can be run again."""

    status = 503


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


class Runner:
    """One run's pass over Stripe and the ledger: writes its items, page by page, and its progress."""

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

