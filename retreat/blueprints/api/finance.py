"""Finance reads: ledger entries and payments, for the tokens of finance and admin users.

Filters ``from`` / ``to`` (ISO dates, UTC days, inclusive), ``cohort`` (id) and ``kind``; cursor
pagination (``limit`` 1-200, ``next_cursor`` until it is null) in the stable order
``(created_at, id)``. Any bad filter answers 400 with the field's message; nothing is written.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from retreat.accounts.models import Role
from retreat.blueprints.api import pages
from retreat.blueprints.api.schemas import ErrorSchema
from retreat.core.errors import DomainError
from retreat.payments import feed
from retreat.payments.models import LedgerType, PaymentKind, PaymentStatus
from retreat.web.errors import json_error
from retreat.web.etag import ETAG_HEADER, NOT_MODIFIED
from retreat.web.security import api_roles_required, api_scope_required

blp = Blueprint("api_finance", __name__, url_prefix="/api/v1",
                description="Finance: ledger entries and payments (finance and admin tokens)")

BAD_QUERY = "A filter is invalid (field errors under `errors`); nothing was read."
LEDGER_KINDS = [t.value for t in LedgerType]
PAYMENT_KINDS = [k.value for k in PaymentKind]


class _FeedQuerySchema(Schema):
    from_ = fields.Date(data_key="from", metadata={"description": "First UTC day (inclusive), YYYY-MM-DD.",
                                                   "example": "2026-01-01"})
    to = fields.Date(metadata={"description": "Last UTC day (inclusive), YYYY-MM-DD.", "example": "2026-12-31"})
    cohort = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1),
                            metadata={"description": "Only this cohort's rows (cohort id).", "example": 3})
    limit = pages.limit_field(feed.DEFAULT_LIMIT, feed.MAX_LIMIT)
    cursor = pages.cursor_field(feed.MAX_CURSOR)


class LedgerQuerySchema(_FeedQuerySchema):
    kind = fields.String(validate=validate.OneOf(LEDGER_KINDS),
                         metadata={"description": "Entry type.", "enum": LEDGER_KINDS, "example": "charge"})


class PaymentQuerySchema(_FeedQuerySchema):
    kind = fields.String(validate=validate.OneOf(PAYMENT_KINDS),
                         metadata={"description": "Payment kind.", "enum": PAYMENT_KINDS, "example": "deposit"})


class LedgerEntryItemSchema(Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"enum": LEDGER_KINDS})
    amount_minor = fields.Integer(required=True, metadata={"description": "Signed minor units: + money in."})
    currency = fields.String(required=True)
    enrollment_id = fields.Integer(required=True)
    cohort_id = fields.Integer(required=True)
    participant_id = fields.Integer(required=True)
    payment_id = fields.Integer(allow_none=True)
    refund_id = fields.Integer(allow_none=True)
    stripe_object_id = fields.String(required=True)
    memo = fields.String()
    document_number = fields.String(allow_none=True, metadata={"description": "Receipt or credit note number."})


class PaymentItemSchema(Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"enum": PAYMENT_KINDS})
    status = fields.String(required=True, metadata={"enum": [s.value for s in PaymentStatus]})
    amount_minor = fields.Integer(required=True)
    currency = fields.String(required=True)
    enrollment_id = fields.Integer(required=True)
    cohort_id = fields.Integer(required=True)
    participant_id = fields.Integer(required=True)
    stripe_payment_intent_id = fields.String(allow_none=True)
    succeeded_at = fields.DateTime(allow_none=True)
    receipt_number = fields.String(allow_none=True)


class LedgerEntryPageSchema(Schema):
    items = fields.List(fields.Nested(LedgerEntryItemSchema), required=True)
    next_cursor = pages.next_cursor_field()


class PaymentPageSchema(Schema):
    items = fields.List(fields.Nested(PaymentItemSchema), required=True)
    next_cursor = pages.next_cursor_field()


LEDGER_EXAMPLE = {"items": [{"id": 41, "created_at": "2026-03-10T18:00:00+00:00", "kind": "charge",
                             "amount_minor": 50000, "currency": "USD", "enrollment_id": 7, "cohort_id": 3,
                             "participant_id": 12, "payment_id": 9, "refund_id": None,
                             "stripe_object_id": "pi_3Qx...", "memo": "deposit payment",
                             "document_number": "R-2026-000041"}],
                  "next_cursor": "MjAyNi0wMy0xMFQxODowMDowMCswMDowMHw0MQ"}
PAYMENT_EXAMPLE = {"items": [{"id": 9, "created_at": "2026-03-10T17:58:00+00:00", "kind": "deposit",
                              "status": "succeeded", "amount_minor": 50000, "currency": "USD", "enrollment_id": 7,
                              "cohort_id": 3, "participant_id": 12, "stripe_payment_intent_id": "pi_3Qx...",
                              "succeeded_at": "2026-03-10T18:00:00+00:00", "receipt_number": "R-2026-000041"}],
                   "next_cursor": None}
BAD_EXAMPLE = {"error": "Some query parameters are invalid.", "errors": {"kind": ["Must be one of: charge, refund."]}}


def _filters(args) -> feed.Filters:
    return feed.Filters(since=args.get("from_"), until=args.get("to"), cohort_id=args.get("cohort"),
                        kind=args.get("kind"), limit=args["limit"], cursor=args.get("cursor"))


def _refused(exc: DomainError):
    return json_error(400, exc.message, exc.errors or None)


@blp.route("/ledger-entries", methods=["GET"])
@api_roles_required(Role.FINANCE, Role.ADMIN)
@api_scope_required("read:finance")
@blp.arguments(LedgerQuerySchema, location="query", error_status_code=400)
@blp.response(200, LedgerEntryPageSchema, example=LEDGER_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
def ledger_entries(args):
    """Ledger entries, oldest first, a page at a time

    Every charge, refund, dispute, fee, discount and adjustment, with the receipt or credit note
    number of charges and refunds."""
    try:
        page = feed.ledger_entries(_filters(args))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(LedgerEntryPageSchema(), page)


@blp.route("/payments", methods=["GET"])
@api_roles_required(Role.FINANCE, Role.ADMIN)
@api_scope_required("read:finance")
@blp.arguments(PaymentQuerySchema, location="query", error_status_code=400)
@blp.response(200, PaymentPageSchema, example=PAYMENT_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
def payments(args):
    """Payment attempts, oldest first, a page at a time

    One row per attempt (PaymentIntent), whatever its status, with the receipt number once paid."""
    try:
        page = feed.payments(_filters(args))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(PaymentPageSchema(), page)
