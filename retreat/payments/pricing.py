"""Prices: the cohort's price, a scholarship override, discount codes (percent or fixed, with use
limits, dates and a cohort restriction) and staff-approved healthcare-professional discounts.

The price shown, charged and recorded always agree: ``quote`` derives everything from the
scholarship override and the ledger (discounts are ledger entries), and the payment service
charges exactly what ``quote`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts import seats
from retreat.cohorts.enrollment import EXITS
from retreat.cohorts.models import Cohort, Enrollment, EnrollmentStatus
from retreat.core import locking
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.money import MoneyError, format_money, normalize_currency, percent_of, to_minor
from retreat.payments import ledger
from retreat.payments.models import (
    DiscountCode,
    DiscountKind,
    DiscountRedemption,
    LedgerType,
    PriceOverride,
    RedemptionStatus,
)


@dataclass(frozen=True)
class Quote:
    currency: str
    list_price: int  # the cohort's price
    base_price: int  # after a scholarship
    discount: int  # positive: what discounts take off
    total: int  # what the participant owes in all
    deposit: int  # the deposit part of the total
    paid: int  # net money received (ledger)
    closed: bool = False  # the enrollment exited (withdrawn, not cleared, cancelled...): nothing is owed
    refunded: int = 0  # money given back (ledger refunds, positive); counted only for a closed enrollment

    @property
    def balance(self) -> int:
        return self.total - self.paid

    @property
    def owed(self) -> int:
        """What the participant still has to pay: nothing once the enrollment has exited."""
        return 0 if self.closed else max(0, self.balance)

    @property
    def received(self) -> int:
        """Money received before refunds."""
        return self.paid + self.refunded

    @property
    def deposit_outstanding(self) -> int:
        return max(0, min(self.deposit, self.total) - self.paid)

    def fmt(self, amount: int) -> str:
        return format_money(amount, self.currency)


def _override(enr: Enrollment) -> PriceOverride | None:
    return db.session.scalar(select(PriceOverride).where(PriceOverride.enrollment_id == enr.id))


def quote(enr: Enrollment) -> Quote:
    cohort: Cohort = enr.cohort
    override = _override(enr)
    base = override.price_minor if override is not None else cohort.price_minor
    adjustments = ledger.price_adjustments(enr.id)
    total = max(0, base + adjustments)
    closed = EnrollmentStatus(enr.status) in EXITS
    return Quote(currency=cohort.currency.upper(), list_price=cohort.price_minor, base_price=base,
                 discount=max(0, -adjustments), total=total, deposit=min(cohort.deposit_minor, total),
                 paid=ledger.paid(enr.id), closed=closed, refunded=ledger.refunded(enr.id) if closed else 0)


def discount_amount(code: DiscountCode, base_price: int, currency: str) -> int:
    """What ``code`` takes off ``base_price``: percent rounded half up to a whole minor unit (so a
    zero-decimal currency such as JPY rounds to a whole yen), fixed amounts capped at the price."""
    if code.kind == DiscountKind.PERCENT:
        return min(base_price, percent_of(base_price, code.percent or 0))
    if normalize_currency(code.currency or "") != normalize_currency(currency):
        raise ValidationFailed(f"This code is for prices in {code.currency}.", field="code")
    return min(base_price, int(code.amount_minor or 0))


def _uses(code: DiscountCode) -> int:
    return int(db.session.scalar(select(func.count()).select_from(DiscountRedemption).where(
        DiscountRedemption.code_id == code.id,
        DiscountRedemption.status != RedemptionStatus.REJECTED.value)) or 0)


def _uses_by(code: DiscountCode, participant_id: int) -> int:
    return int(db.session.scalar(select(func.count()).select_from(DiscountRedemption).join(
        Enrollment, Enrollment.id == DiscountRedemption.enrollment_id).where(
        DiscountRedemption.code_id == code.id, Enrollment.participant_id == participant_id,
        DiscountRedemption.status != RedemptionStatus.REJECTED.value)) or 0)


def redeem_code(enr: Enrollment, raw_code: str, *, now: datetime, actor: User | None,
                evidence: str = "") -> DiscountRedemption:
    """Apply a discount code to an enrollment (one per enrollment). Codes that need staff approval
    (healthcare professional) wait as ``pending_approval`` and change no price until approved."""
    text = (raw_code or "").strip().upper()
    if not text or len(text) > 40:
        raise ValidationFailed("Enter a discount code.", field="code")
    code = locking.lock(DiscountCode, text, column=DiscountCode.code)
    if code is None or not code.is_active:
        raise ValidationFailed("This discount code is not valid.", field="code")
    if code.valid_from and now < code.valid_from:
        raise ValidationFailed("This discount code is not valid yet.", field="code")
    if code.valid_until and now >= code.valid_until:
        raise ValidationFailed("This discount code has expired.", field="code")
    cohort_ids = [c.id for c in code.cohorts]
    if (cohort_ids and enr.cohort_id not in cohort_ids) or (
            not cohort_ids and code.cohort_id is not None and code.cohort_id != enr.cohort_id):
        raise ValidationFailed("This discount code is not valid for this cohort.", field="code")
    # Both limits are counted under the code's row lock, so two people redeeming the last use at
    # once cannot both succeed.
    if code.max_uses is not None and _uses(code) >= code.max_uses:
        raise ValidationFailed("This discount code has been used up.", field="code")
    if code.per_person_limit is not None and _uses_by(code, enr.participant_id) >= code.per_person_limit:
        raise ValidationFailed("You have already used this discount code as many times as it allows.",
                               field="code")
    enr = seats.lock_enrollment(enr.id)
    if db.session.scalar(select(DiscountRedemption).where(DiscountRedemption.enrollment_id == enr.id)):
        raise Conflict("A discount is already applied to this enrollment.", field="code")
    evidence = (evidence or "").strip()
    if code.requires_approval and not evidence:
        raise ValidationFailed("Enter your professional licence number so staff can approve the discount.",
                               field="evidence")
    q = quote(enr)
    amount = discount_amount(code, q.base_price, q.currency)
    if q.total - amount < q.paid:
        raise Conflict("This discount is larger than what is left to pay; ask the practice for a refund instead.",
                       field="code")
    red = DiscountRedemption(code_id=code.id, enrollment_id=enr.id, amount_minor=amount, currency=q.currency,
                             evidence=evidence[:300],
                             status=(RedemptionStatus.PENDING_APPROVAL if code.requires_approval
                                     else RedemptionStatus.APPLIED).value, created_at=now, updated_at=now)
    db.session.add(red)
    db.session.flush()
    if red.status == RedemptionStatus.APPLIED:
        _apply(red, now=now)
    audit.record("payments.discount_redeemed", actor=actor, object_type="enrollment", object_id=enr.id,
                 details={"code": code.code, "amount_minor": amount, "status": red.status}, now=now)
    return red


def _apply(red: DiscountRedemption, *, now: datetime) -> None:
    ledger.record(enrollment_id=red.enrollment_id, entry_type=LedgerType.DISCOUNT, amount_minor=-red.amount_minor,
                  currency=red.currency, object_id=f"redemption:{red.id}", now=now,
                  memo=f"Discount {red.code.code}")


def decide_redemption(red: DiscountRedemption, *, approve: bool, now: datetime, actor: User) -> DiscountRedemption:
    """Staff approve or reject a healthcare-professional discount. Repeating a decision is a no-op."""
    red = locking.lock(DiscountRedemption, red.id)
    if red is None:
        raise NotFound("No such discount request.")
    target = RedemptionStatus.APPLIED if approve else RedemptionStatus.REJECTED
    if red.status == target:
        return red
    if red.status != RedemptionStatus.PENDING_APPROVAL:
        raise Conflict("This discount request was already decided.")
    if approve:
        q = quote(red.enrollment)
        if q.total - red.amount_minor < q.paid:
            raise Conflict("This discount is larger than what is left to pay; issue a refund instead.")
    red.status = target.value
    red.decided_by_id = actor.id
    red.decided_at = now
    if approve:
        _apply(red, now=now)
    audit.record("payments.discount_" + ("approved" if approve else "rejected"), actor=actor,
                 object_type="enrollment", object_id=red.enrollment_id,
                 details={"redemption": red.id, "amount_minor": red.amount_minor}, now=now)
    return red


def scholarship_of(enr: Enrollment) -> PriceOverride | None:
    """The enrollment's scholarship (reduced price and the reason staff gave), if any: for the
    finance page, the participant's payments page and statements."""
    return _override(enr)


SCHOLARSHIP_REASON_MAX = 500


def set_scholarship(enr: Enrollment, price: str | int, *, reason: str, now: datetime, actor: User,
                    ctx=None) -> PriceOverride:
    """Staff set a reduced price for one enrollment (a scholarship). Refused, changing nothing: a
    price above the cohort's price or below zero, no reason or one over 500 characters, or a
    price that would leave the participant having paid more than they owe (that would need a
    refund: issue one instead). The balance, installments still due and refunds follow from the
    new price through ``quote``."""
    cohort = enr.cohort
    errors: dict[str, list[str]] = {}
    price_minor = None
    text = price.strip() if isinstance(price, str) else price
    if text == "" or text is None:
        errors["price"] = ["Scholarship price is required."]
    else:
        try:
            price_minor = text if isinstance(text, int) else to_minor(text, cohort.currency)
        except MoneyError as exc:
            errors["price"] = [f"Enter a price such as 1200.00 ({exc})."]
        else:
            if price_minor < 0 or price_minor > cohort.price_minor:
                errors["price"] = [f"A scholarship price is between zero and the cohort's price "
                                   f"({format_money(cohort.price_minor, cohort.currency)})."]
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = ["Give a reason for the scholarship."]
    elif len(reason) > SCHOLARSHIP_REASON_MAX:
        errors["reason"] = [f"Reason must be at most {SCHOLARSHIP_REASON_MAX} characters (it has {len(reason)})."]
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], errors=errors)
    enr = seats.lock_enrollment(enr.id)
    q = quote(enr)
    if price_minor + (q.total - q.base_price) < q.paid:
        least = q.paid - (q.total - q.base_price)
        raise Conflict(f"This price is below what was already paid ({format_money(q.paid, q.currency)}; the "
                       f"lowest price possible now is {format_money(least, q.currency)}): issue a refund "
                       "instead.", field="price")
    row = _override(enr)
    before = (row.price_minor, row.reason) if row is not None else (cohort.price_minor, "")
    row = row or PriceOverride(enrollment_id=enr.id, created_at=now)
    row.price_minor = price_minor
    row.currency = cohort.currency.upper()
    row.reason = reason
    row.set_by_id = actor.id
    row.updated_at = now
    db.session.add(row)
    db.session.flush()
    audit.record("payments.scholarship_set", actor=actor, object_type="enrollment", object_id=enr.id, ctx=ctx,
                 details={"price_minor": price_minor, "currency": row.currency, "reason": reason,
                          "previous_price_minor": before[0], "list_price_minor": cohort.price_minor}, now=now)
    return row
