"""Accounting exports: the ledger as CSV, streamed row by row.

One line per ledger entry, in the order they happened, with the columns an accountant imports:
the local date, the cohort, the participant's name, the entry type, gross / fee / net as decimal
strings in the currency's own precision (``1250.00`` USD, ``5000`` JPY), the currency, the Stripe
ids and the payout id. A charge, refund or dispute is gross (fee 0); a Stripe fee entry is a fee
(gross 0); net = gross + fee, so the net column of an export adds up to the ledger's sum.

Nothing clinical is exported (no memo, no refund reason: only amounts, names and ids).

The rows come from a server-side cursor (``yield_per``) and are written as they are read, so an
export of any size uses the memory of one batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.context import RequestContext
from retreat.core.spreadsheet import safe_row
from retreat.extensions import db
from retreat.finance.reports import ReportFilter, apply_filter
from retreat.money import exponent, from_minor
from retreat.payments.models import LedgerEntry, LedgerType, Payment, Refund
from retreat.timeutil import to_local

BATCH = 500
COLUMNS = ("date", "time_utc", "entry_id", "cohort", "participant", "type", "payment_kind", "gross", "fee", "net",
           "currency", "stripe_object_id", "stripe_payment_intent_id", "stripe_refund_id", "payout_id")
# Columns a payout linkage may add to the ledger (the Stripe payout id), in order of preference.
PAYOUT_COLUMNS = ("stripe_payout_id", "payout_stripe_id", "payout_id")
FEE_TYPES = (LedgerType.FEE.value,)


def decimal_string(amount_minor: int, currency: str) -> str:
    """``-1250`` USD -> ``-12.50``; ``5000`` JPY -> ``5000``; no symbol, no thousands separator."""
    exp = exponent(currency)
    value = from_minor(int(amount_minor), currency).quantize(Decimal(1).scaleb(-exp))
    return f"{value:.{exp}f}"


def payout_column():
    """The ledger's payout id column if the payout linkage has added one, else None (the CSV
    column stays empty: nothing is invented)."""
    cols = LedgerEntry.__table__.c
    for name in PAYOUT_COLUMNS:
        if name in cols:
            return cols[name]
    return None


def _payout_expression(stmt):
    """The Stripe payout id of each entry through the payout lines: a fee or dispute entry is keyed
    by the balance transaction a line settled; a charge, refund or dispute entry is the line's
    ``ledger_entry_id``. Two indexed outer joins; NULL while the entry is in no synced payout."""
    from sqlalchemy.orm import aliased

    from retreat.finance.payout_models import Payout, PayoutLine

    by_txn, by_entry = aliased(PayoutLine), aliased(PayoutLine)
    p_txn, p_entry = aliased(Payout), aliased(Payout)
    stmt = (stmt.outerjoin(by_txn, by_txn.balance_transaction_id == LedgerEntry.stripe_object_id)
            .outerjoin(p_txn, p_txn.id == by_txn.payout_id)
            .outerjoin(by_entry, by_entry.ledger_entry_id == LedgerEntry.id)
            .outerjoin(p_entry, p_entry.id == by_entry.payout_id))
    return stmt, func.coalesce(p_txn.stripe_payout_id, p_entry.stripe_payout_id)


def ledger_statement(flt: ReportFilter):
    stmt = (select(LedgerEntry.id, LedgerEntry.created_at, LedgerEntry.entry_type, LedgerEntry.amount_minor,
                   LedgerEntry.currency, LedgerEntry.stripe_object_id, Cohort.title, User.name, Payment.kind,
                   Payment.stripe_payment_intent_id, Refund.stripe_refund_id)
            .join(Enrollment, Enrollment.id == LedgerEntry.enrollment_id)
            .join(Cohort, Cohort.id == Enrollment.cohort_id)
            .join(User, User.id == Enrollment.participant_id)
            .outerjoin(Payment, Payment.id == LedgerEntry.payment_id)
            .outerjoin(Refund, Refund.id == LedgerEntry.refund_id))
    payout = payout_column()
    if payout is None:
        stmt, payout = _payout_expression(stmt)
    stmt = stmt.add_columns(payout.label("payout")).order_by(LedgerEntry.created_at, LedgerEntry.id)
    return apply_filter(stmt, flt).execution_options(yield_per=BATCH)


def ledger_rows(flt: ReportFilter) -> Iterator[list[str]]:
    """The export's rows (header first), read from the database in batches."""
    yield list(COLUMNS)
    for (entry_id, at, entry_type, amount, currency, object_id, cohort, participant, kind, pi_id, refund_id,
         payout) in db.session.execute(ledger_statement(flt)):
        is_fee = entry_type in FEE_TYPES
        gross, fee = (0, amount) if is_fee else (amount, 0)
        yield [to_local(at, flt.tz).date().isoformat(), at.strftime("%Y-%m-%dT%H:%M:%SZ"), str(entry_id),
               cohort, participant, entry_type, kind or "", decimal_string(gross, currency),
               decimal_string(fee, currency), decimal_string(amount, currency), currency, object_id or "",
               pi_id or "", refund_id or "", "" if payout is None else str(payout)]


def ledger_csv(flt: ReportFilter) -> Iterator[str]:
    """The CSV text in chunks of about ``BATCH`` lines."""
    return csv_stream(ledger_rows(flt))


def csv_stream(rows: Iterable[list[str]]) -> Iterator[str]:
    """Rows as CSV text in chunks of about ``BATCH`` lines, every cell through the formula-injection guard."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for i, row in enumerate(rows):
        writer.writerow(safe_row(row))
        if i % BATCH == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue()


def ledger_filename(flt: ReportFilter) -> str:
    parts = ["ledger"]
    if flt.start:
        parts.append(flt.start.isoformat())
    if flt.end:
        parts.append(flt.end.isoformat())
    if flt.cohort_id is not None:
        parts.append(f"cohort-{flt.cohort_id}")
    return "-".join(parts) + ".csv"


def record_export(kind: str, flt: ReportFilter, *, actor: User | None, ctx: RequestContext | None = None,
                  now: datetime | None = None) -> None:
    """An export of names and amounts leaves an audit event (who, when, which filter)."""
    audit.record(f"finance.{kind}_exported", actor=actor, object_type="export", object_id=kind, ctx=ctx, now=now,
                 details={**flt.query_args(), "tz": flt.tz})
