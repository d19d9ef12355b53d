"""Discount codes as finance manages them: create, edit, deactivate (a code is never deleted, so
its redemptions keep their meaning), with their usage counts.

A code takes a percentage (1-100) or a fixed amount in minor units of one currency (a fixed code
applies only to cohorts of that currency); it is valid from one date to another in the zone of
whoever sets it (the until date counts in full); it has an optional total limit and per-person
limit (both enforced by ``pricing.redeem_code`` under the code's row lock); it applies to the
cohorts chosen, or to all when none is chosen. A "healthcare professional" code needs evidence
that finance approves (``pricing.decide_redemption``). Codes are unique whatever their case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import Cohort
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.money import MoneyError, format_money, normalize_currency, to_minor
from retreat.payments.models import DiscountCode, DiscountKind, DiscountRedemption, RedemptionStatus
from retreat.timeutil import to_local, zone

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,39}$")


@dataclass
class CodeInput:
    """What a finance form gives (text as typed; the rules here parse and check it)."""

    code: str
    kind: str  # "percent" | "fixed"
    description: str = ""
    percent: int | None = None
    amount: str = ""  # fixed amount as typed, e.g. "150.00"
    currency: str = ""
    valid_from: date | None = None
    valid_until: date | None = None
    max_uses: int | None = None
    per_person_limit: int | None = None
    cohort_ids: list[int] = field(default_factory=list)
    healthcare: bool = False
    tz: str = "UTC"


@dataclass(frozen=True)
class CodeRow:
    code: DiscountCode
    uses: int  # applied or awaiting approval
    pending: int  # awaiting approval


def uses(code_id: int) -> int:
    return int(db.session.scalar(select(func.count()).select_from(DiscountRedemption).where(
        DiscountRedemption.code_id == code_id,
        DiscountRedemption.status != RedemptionStatus.REJECTED.value)) or 0)


def listing() -> list[CodeRow]:
    """Every code, newest first, with its usage counts and cohorts (a fixed number of statements)."""
    codes = db.session.scalars(select(DiscountCode).order_by(DiscountCode.id.desc()).options(
        selectinload(DiscountCode.cohorts), selectinload(DiscountCode.cohort))).all()
    counts: dict[int, dict[str, int]] = {}
    for code_id, status, n in db.session.execute(
            select(DiscountRedemption.code_id, DiscountRedemption.status, func.count())
            .group_by(DiscountRedemption.code_id, DiscountRedemption.status)):
        counts.setdefault(code_id, {})[status] = int(n)
    rows = []
    for c in codes:
        by = counts.get(c.id, {})
        pending = by.get(RedemptionStatus.PENDING_APPROVAL.value, 0)
        rows.append(CodeRow(code=c, uses=pending + by.get(RedemptionStatus.APPLIED.value, 0), pending=pending))
    return rows


def local_bounds(code: DiscountCode, tz: str) -> tuple[date | None, date | None]:
    """The code's validity as the dates a form shows (the until date inclusive)."""
    start = to_local(code.valid_from, tz).date() if code.valid_from else None
    end = (to_local(code.valid_until, tz) - timedelta(microseconds=1)).date() if code.valid_until else None
    return start, end


def _start_of(day: date, tz: str) -> datetime:
    from datetime import UTC

    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def _check(data: CodeInput, existing: DiscountCode | None) -> dict:
    errors: dict[str, list[str]] = {}

    def bad(name, message):
        errors.setdefault(name, []).append(message)

    text = (data.code or "").strip().upper()
    if not text:
        bad("code", "Code is required.")
    elif not CODE_RE.match(text):
        bad("code", "Use 2 to 40 letters, digits, dashes or underscores for the code.")
    kind = data.kind if data.kind in (DiscountKind.PERCENT.value, DiscountKind.FIXED.value) else None
    if kind is None:
        bad("kind", "Choose a percentage or a fixed amount.")
    values: dict = {"code": text, "kind": kind, "description": (data.description or "").strip()[:200],
                    "percent": None, "amount_minor": None, "currency": None}
    if len((data.description or "").strip()) > 200:
        bad("description", "Description must be at most 200 characters.")
    cohorts = []
    if data.cohort_ids:
        cohorts = db.session.scalars(select(Cohort).where(Cohort.id.in_(set(data.cohort_ids)))).all()
        if len(cohorts) != len(set(data.cohort_ids)):
            bad("cohorts", "Choose cohorts from the list.")
    if kind == DiscountKind.PERCENT:
        if data.percent is None:
            bad("percent", "Percentage is required for a percentage discount.")
        elif not 1 <= data.percent <= 100:
            bad("percent", "Percentage must be between 1 and 100.")
        else:
            values["percent"] = data.percent
    elif kind == DiscountKind.FIXED:
        try:
            currency = normalize_currency(data.currency or "")
        except MoneyError:
            currency = ""
        if not currency:
            bad("currency", "Currency is required for a fixed amount (e.g. USD).")
        else:
            values["currency"] = currency
            try:
                amount = to_minor((data.amount or "").strip(), currency) if (data.amount or "").strip() else None
            except MoneyError as exc:
                amount = None
                bad("amount", f"Enter an amount such as 150.00 ({exc}).")
            else:
                if amount is None:
                    bad("amount", "Amount is required for a fixed discount.")
                elif amount <= 0:
                    bad("amount", "Amount must be greater than zero.")
                elif amount > 2_000_000_000:
                    bad("amount", "That amount is too large.")
                else:
                    values["amount_minor"] = amount
            others = sorted({c.currency.upper() for c in cohorts if c.currency.upper() != currency})
            if others:
                bad("cohorts", f"A fixed {currency} amount applies only to {currency} cohorts; "
                               f"unselect the {', '.join(others)} cohorts.")
    for name, label in (("max_uses", "Total limit"), ("per_person_limit", "Per-person limit")):
        value = getattr(data, name)
        if value is not None and not 1 <= value <= 1_000_000:
            bad(name, f"{label} must be between 1 and 1,000,000 (or empty for no limit).")
    if data.max_uses is not None and data.per_person_limit is not None and data.per_person_limit > data.max_uses:
        bad("per_person_limit", "Per-person limit cannot be above the total limit.")
    if existing is not None and data.max_uses is not None:
        used = uses(existing.id)
        if data.max_uses < used:
            bad("max_uses", f"Total limit cannot be below the {used} uses this code already has.")
    if data.valid_from and data.valid_until and data.valid_until < data.valid_from:
        bad("valid_until", "Valid until must be on or after valid from.")
    values["valid_from"] = _start_of(data.valid_from, data.tz) if data.valid_from else None
    values["valid_until"] = _start_of(data.valid_until + timedelta(days=1), data.tz) if data.valid_until else None
    values["max_uses"] = data.max_uses
    values["per_person_limit"] = data.per_person_limit
    values["requires_approval"] = bool(data.healthcare)
    if text and not errors.get("code"):
        clash = db.session.scalar(select(DiscountCode.id).where(func.upper(DiscountCode.code) == text))
        if clash is not None and (existing is None or clash != existing.id):
            bad("code", f"The code {text} already exists (codes ignore upper/lower case).")
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationFailed(first, errors=errors)
    return values | {"cohorts": list(cohorts)}


def save_code(existing: DiscountCode | None, data: CodeInput, *, now: datetime, actor: User,
              ctx: RequestContext | None = None) -> DiscountCode:
    """Create (``existing`` None) or edit a code. Raises ValidationFailed naming each bad field."""
    if existing is not None:
        from retreat.core import locking

        existing = locking.lock(DiscountCode, existing.id)
    values = _check(data, existing)
    cohorts = values.pop("cohorts")
    row = existing or DiscountCode(created_at=now, is_active=True)
    before = _snapshot(row) if existing is not None else None
    for k, v in values.items():
        setattr(row, k, v)
    row.cohorts = cohorts
    row.cohort_id = None
    row.updated_at = now
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError as exc:  # another finance user saved the same code meanwhile
        raise Conflict(f"The code {values['code']} already exists.", field="code") from exc
    audit.record("payments.discount_code_" + ("updated" if existing is not None else "created"), actor=actor,
                 object_type="discount_code", object_id=row.id, ctx=ctx, now=now,
                 details={"after": _snapshot(row), **({"before": before} if before else {})})
    return row


def deactivate(code: DiscountCode, *, now: datetime, actor: User, ctx: RequestContext | None = None,
               active: bool = False) -> DiscountCode:
    """Stop (or, with ``active``, restart) a code being redeemed. Redemptions already made stay."""
    from retreat.core import locking

    code = locking.lock(DiscountCode, code.id)
    if code.is_active == active:
        return code
    code.is_active = active
    code.updated_at = now
    audit.record("payments.discount_code_" + ("reactivated" if active else "deactivated"), actor=actor,
                 object_type="discount_code", object_id=code.id, ctx=ctx, now=now, details={"code": code.code})
    return code


def _snapshot(c: DiscountCode) -> dict:
    return {"code": c.code, "kind": c.kind, "percent": c.percent, "amount_minor": c.amount_minor,
            "currency": c.currency, "max_uses": c.max_uses, "per_person_limit": c.per_person_limit,
            "valid_from": c.valid_from.isoformat() if c.valid_from else None,
            "valid_until": c.valid_until.isoformat() if c.valid_until else None,
            "cohorts": [x.id for x in c.cohorts] or ([c.cohort_id] if c.cohort_id else []),
            "requires_approval": bool(c.requires_approval), "is_active": bool(c.is_active)}


def value_text(c: DiscountCode) -> str:
    if c.kind == DiscountKind.PERCENT:
        return f"{c.percent} %"
    return format_money(c.amount_minor, c.currency or "USD")


def applies_to(c: DiscountCode, cohort_id: int) -> bool:
    ids = [x.id for x in c.cohorts]
    if ids:
        return cohort_id in ids
    return c.cohort_id is None or c.cohort_id == cohort_id


def amount_text(c: DiscountCode) -> str:
    """A fixed amount as a form shows it (e.g. "150.00")."""
    if c.amount_minor is None or not c.currency:
        return ""
    from retreat.money import from_minor

    return str(from_minor(c.amount_minor, c.currency))
