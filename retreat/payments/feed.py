"""Finance's read feed of ledger entries and payments (``GET /api/v1/ledger-entries``, ``/payments``).

Keyset pagination in a stable order, ``(created_at, id)`` ascending: a page is the rows after the
cursor, so rows written while a client pages through never shift or repeat what it already read.
The cursor is opaque to clients (URL-safe base64 of the last row's time and id); a cursor that does
not decode is a ``ValidationFailed`` on ``cursor``. Each page is one query (the cohort, the
receipt or credit-note number and the Stripe ids come from joins), whatever its size.

Dates filter on UTC days: ``since`` from 00:00 UTC, ``until`` through 24:00 UTC of its day.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, or_, select

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.payments.document_models import DocumentKind, FinanceDocument
from retreat.payments.models import LedgerEntry, Payment

MAX_LIMIT, DEFAULT_LIMIT = 200, 50
MAX_CURSOR = 120


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    cohort_id: int | None = None
    kind: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class FeedPage:
    items: list[dict]
    next_cursor: str | None


def encode_cursor(at: datetime, row_id: int) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    bad = ValidationFailed("Not a cursor from this API: pass next_cursor as it was returned.", field="cursor")
    if not cursor or len(cursor) > MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, id_text = raw.split("|")
        at = datetime.fromisoformat(at_text)
        row_id = int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if at.tzinfo is None or not 0 < row_id < 2**31:
        raise bad
    return at, row_id


def _check(f: Filters) -> None:
    if not 1 <= f.limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_LIMIT}.", field="limit")
    if f.since and f.until and f.until < f.since:
        raise ValidationFailed("to must be on or after from.", field="to")
    if f.cohort_id is not None and db.session.get(Cohort, f.cohort_id) is None:
        raise ValidationFailed("No cohort has this id.", field="cohort")


def _window(stmt, model, f: Filters):
    if f.since:
        stmt = stmt.where(model.created_at >= datetime.combine(f.since, time(0), UTC))
    if f.until:
        stmt = stmt.where(model.created_at < datetime.combine(f.until + timedelta(days=1), time(0), UTC))
    if f.cursor:
        at, row_id = decode_cursor(f.cursor)
        stmt = stmt.where(or_(model.created_at > at, and_(model.created_at == at, model.id > row_id)))
    return stmt.order_by(model.created_at, model.id).limit(f.limit + 1)


def _page(rows, f: Filters, to_item) -> FeedPage:
    more = len(rows) > f.limit
    rows = rows[:f.limit]
    items = [to_item(r) for r in rows]
    last = rows[-1][0] if rows else None
    return FeedPage(items, encode_cursor(last.created_at, last.id) if more and last is not None else None)


def ledger_entries(f: Filters) -> FeedPage:
    _check(f)
    stmt = (select(LedgerEntry, Enrollment.cohort_id, Enrollment.participant_id, FinanceDocument.number)
            .join(Enrollment, Enrollment.id == LedgerEntry.enrollment_id)
            .outerjoin(FinanceDocument, FinanceDocument.ledger_entry_id == LedgerEntry.id))
    if f.cohort_id is not None:
        stmt = stmt.where(Enrollment.cohort_id == f.cohort_id)
    if f.kind:
        stmt = stmt.where(LedgerEntry.entry_type == f.kind)
    rows = db.session.execute(_window(stmt, LedgerEntry, f)).all()

    def item(row) -> dict:
        e, cohort_id, participant_id, number = row
        return {"id": e.id, "created_at": e.created_at, "kind": e.entry_type, "amount_minor": e.amount_minor,
                "currency": e.currency, "enrollment_id": e.enrollment_id, "cohort_id": cohort_id,
                "participant_id": participant_id, "payment_id": e.payment_id, "refund_id": e.refund_id,
                "stripe_object_id": e.stripe_object_id, "memo": e.memo, "document_number": number}

    return _page(rows, f, item)


def payments(f: Filters) -> FeedPage:
    _check(f)
    receipt = (select(FinanceDocument.number).where(FinanceDocument.payment_id == Payment.id,
                                                    FinanceDocument.kind == DocumentKind.RECEIPT.value)
               .order_by(FinanceDocument.id).limit(1).scalar_subquery())
    stmt = (select(Payment, Enrollment.cohort_id, Enrollment.participant_id, receipt)
            .join(Enrollment, Enrollment.id == Payment.enrollment_id))
    if f.cohort_id is not None:
        stmt = stmt.where(Enrollment.cohort_id == f.cohort_id)
    if f.kind:
        stmt = stmt.where(Payment.kind == f.kind)
    rows = db.session.execute(_window(stmt, Payment, f)).all()

    def item(row) -> dict:
        p, cohort_id, participant_id, number = row
        return {"id": p.id, "created_at": p.created_at, "kind": p.kind, "status": p.status,
                "amount_minor": p.amount_minor, "currency": p.currency, "enrollment_id": p.enrollment_id,
                "cohort_id": cohort_id, "participant_id": participant_id,
                "stripe_payment_intent_id": p.stripe_payment_intent_id, "succeeded_at": p.succeeded_at,
                "receipt_number": number}

    return _page(rows, f, item)
