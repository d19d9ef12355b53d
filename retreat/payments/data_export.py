"""Money in a person's data export: each payment attempt and refund (amounts, dates, status, the
receipt reference), installment plans, ledger entries, discounts and price overrides."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts.models import Enrollment
from retreat.core import personal_data
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments.autopay_models import AutopayAttempt, AutopayMandate
from retreat.payments.document_models import FinanceDocument
from retreat.payments.models import (
    DiscountRedemption,
    Installment,
    LedgerEntry,
    Payment,
    PriceOverride,
    Refund,
)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _of(model, person: User):
    return db.session.scalars(select(model).join(Enrollment, Enrollment.id == model.enrollment_id)
                              .where(Enrollment.participant_id == person.id).order_by(model.enrollment_id, model.id))


def payments_section(person: User, **_) -> dict:
    return {
        "payments": [{"enrollment_id": p.enrollment_id, "kind": p.kind, "amount": format_money(p.amount_minor, p.currency),
                      "amount_minor": p.amount_minor, "currency": p.currency, "status": p.status,
                      "created_at": _iso(p.created_at), "succeeded_at": _iso(p.succeeded_at),
                      "disputed_at": _iso(p.disputed_at), "failure": p.failure_message or None,
                      "receipt_reference": p.stripe_payment_intent_id or p.idempotency_key}
                     for p in _of(Payment, person)],
        "refunds": [{"enrollment_id": r.enrollment_id, "kind": r.kind, "amount": format_money(r.amount_minor, r.currency),
                     "amount_minor": r.amount_minor, "currency": r.currency, "status": r.status, "reason": r.reason or None,
                     "created_at": _iso(r.created_at), "receipt_reference": r.stripe_refund_id or r.idempotency_key}
                    for r in _of(Refund, person)],
        "installments": [{"enrollment_id": i.enrollment_id, "number": i.seq, "due_on": _iso(i.due_on),
                          "amount": format_money(i.amount_minor, i.currency), "current_plan": i.is_current}
                         for i in _of(Installment, person)],
        "ledger": [{"enrollment_id": e.enrollment_id, "type": e.entry_type, "amount_minor": e.amount_minor,
                    "currency": e.currency, "at": _iso(e.created_at), "memo": e.memo or None}
                   for e in _of(LedgerEntry, person)],
        "discounts": [{"enrollment_id": r.enrollment_id, "code": r.code.code, "status": r.status,
                       "amount": format_money(r.amount_minor, r.currency), "evidence": r.evidence}
                      for r in _of(DiscountRedemption, person)],
        "price_overrides": [{"enrollment_id": o.enrollment_id, "price": format_money(o.price_minor, o.currency),
                             "reason": o.reason or None} for o in _of(PriceOverride, person)],
        "receipts_and_credit_notes": [{"enrollment_id": d.enrollment_id, "number": d.number, "kind": d.kind,
                                       "amount": format_money(d.amount_minor, d.currency), "issued_at": _iso(d.issued_at)}
                                      for d in _of(FinanceDocument, person)],
        "automatic_payment_mandates": [{"enrollment_id": m.enrollment_id, "status": m.status, "card": m.card_label,
                                        "card_expiry": m.card_expiry or None, "consent_version": m.consent_version,
                                        "consent_text": m.consent_text or None, "created_at": _iso(m.created_at),
                                        "activated_at": _iso(m.activated_at), "revoked_at": _iso(m.revoked_at),
                                        "revoked_reason": m.revoked_reason or None}
                                       for m in _of(AutopayMandate, person)],
        "automatic_payment_attempts": [{"installment_id": a.installment_id, "attempt": a.attempt_no,
                                        "status": a.status, "day": _iso(a.charge_on), "retry_on": _iso(a.retry_on),
                                        "failure": a.failure_message or None, "created_at": _iso(a.created_at)}
                                       for a in db.session.scalars(select(AutopayAttempt).join(
                                           AutopayMandate, AutopayMandate.id == AutopayAttempt.mandate_id).join(
                                           Enrollment, Enrollment.id == AutopayMandate.enrollment_id).where(
                                           Enrollment.participant_id == person.id).order_by(AutopayAttempt.id))],
    }


personal_data.register_section(
    "payments", payments_section, title="Payments and refunds",
    covers=("payments", "refunds", "installments", "ledger_entries", "discount_redemptions", "price_overrides",
            "finance_documents", "autopay_mandates", "autopay_attempts"),
    order=60)
