"""Refund policy: a cohort's schedule of tiers (days before the start -> percent refunded), their
validation, the percent a withdrawal gives at a moment, and the public policy text generated from
the tiers so that the two always agree. Pure reads and one write (``set_schedule``); the refunds
themselves are in ``payments.refunds``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments.models import DEFAULT_SCHEDULE, RefundRule

MAX_TIERS = 10


def schedule(cohort: Cohort) -> list[tuple[int, int]]:
    """The cohort's schedule now, most days first (the default when it has none)."""
    rules = db.session.scalars(select(RefundRule).where(RefundRule.cohort_id == cohort.id)).all()
    rows = [(r.days_before, r.percent) for r in rules] or list(DEFAULT_SCHEDULE)
    return sorted(rows, reverse=True)


def schedule_for(enr: Enrollment) -> list[tuple[int, int]]:
    """The schedule this enrollment applied under (its snapshot); the cohort's own for enrollments
    made before snapshots were kept."""
    if enr.refund_schedule:
        return sorted(((int(d), int(p)) for d, p in enr.refund_schedule), reverse=True)
    return schedule(enr.cohort)


def check_tiers(rows: list[tuple[int | None, int | None]]) -> list[tuple[int, int]]:
    """Validate tiers typed in a form: rows with both parts blank are ignored; at least one tier;
    days 0-730 and percent 0-100; no day twice; more days never refund less. Returns them most
    days first. Raises ValidationFailed (field ``tiers``) naming the row."""
    steps = []
    for i, (days, pct) in enumerate(rows, start=1):
        if days is None and pct is None:
            continue
        if days is None or pct is None:
            raise ValidationFailed(f"Refund tier {i}: enter both the days before the start and the percent.",
                                   field="tiers")
        if not 0 <= days <= 730:
            raise ValidationFailed(f"Refund tier {i}: days before the start must be between 0 and 730.",
                                   field="tiers")
        if not 0 <= pct <= 100:
            raise ValidationFailed(f"Refund tier {i}: the percent refunded must be between 0 and 100.",
                                   field="tiers")
        steps.append((days, pct))
    if not steps:
        raise ValidationFailed("Enter at least one refund tier.", field="tiers")
    if len(steps) > MAX_TIERS:
        raise ValidationFailed(f"Use at most {MAX_TIERS} refund tiers.", field="tiers")
    days_seen = [d for d, _ in steps]
    dupes = sorted({d for d in days_seen if days_seen.count(d) > 1})
    if dupes:
        raise ValidationFailed(f"Two refund tiers have the same number of days ({dupes[0]}); each tier needs "
                               "its own.", field="tiers")
    steps.sort(reverse=True)
    for (d1, p1), (d2, p2) in zip(steps, steps[1:], strict=False):
        if p1 < p2:
            raise ValidationFailed(f"Withdrawing earlier never refunds less: {d1} days before gives {p1} % but "
                                   f"{d2} days before gives {p2} %.", field="tiers")
    return steps


def set_schedule(cohort: Cohort, steps: list[tuple[int, int]]) -> None:
    """Replace the cohort's schedule (validated). Enrollments already made keep theirs."""
    steps = check_tiers([(int(d), int(p)) for d, p in steps])
    for rule in db.session.scalars(select(RefundRule).where(RefundRule.cohort_id == cohort.id)):
        db.session.delete(rule)
    db.session.flush()
    for days, pct in steps:
        db.session.add(RefundRule(cohort_id=cohort.id, days_before=days, percent=pct))
    db.session.flush()


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def policy_text(steps: list[tuple[int, int]], *, screening_fee: str = "") -> str:
    """The public refund policy, generated from the tiers so that the two always agree. With a
    ``screening_fee`` (formatted), it says the fee is kept on withdrawal and refunded if not cleared."""
    steps = sorted(steps, reverse=True)
    parts = []
    for days, pct in steps:
        when = "up to the start" if days == 0 else f"{_days(days)} or more before the start"
        parts.append(f"withdraw {when}: {pct} % of what you paid is refunded" if pct else
                     f"withdraw {when}: no refund")
    last_days = steps[-1][0] if steps else 0
    if last_days > 0:
        parts.append(f"withdraw later than {_days(last_days)} before the start: no refund")
    text = "; ".join(parts)
    text = (text[:1].upper() + text[1:] + ". If you are not medically cleared, or the practice cancels, "
            "everything you paid is refunded.")
    if screening_fee:
        text = text.replace("of what you paid is refunded", "of what you paid (apart from the screening fee) is "
                            "refunded")
        text += (f" The screening fee ({screening_fee}) is kept if you withdraw, and refunded in full if you are "
                 "not medically cleared.")
    return text


PERCENT_IN_NOTES = re.compile(r"\d\s*(%|percent|per cent)", re.IGNORECASE)


def notes_shown(cohort: Cohort) -> str:
    """The cohort's additional refund notes as participants see them: left out while they still
    state percentages (free text written before the tiers, which could disagree with them)."""
    notes = (cohort.refund_policy or "").strip()
    return "" if PERCENT_IN_NOTES.search(notes) else notes


def _fee(amount: int | None, currency: str) -> str:
    return format_money(amount, currency) if amount else ""


def cohort_policy_text(cohort: Cohort) -> str:
    return policy_text(schedule(cohort), screening_fee=_fee(cohort.screening_fee_minor, cohort.currency))


def enrollment_policy_text(enr: Enrollment) -> str:
    return policy_text(schedule_for(enr), screening_fee=_fee(enr.screening_fee_minor, enr.cohort.currency))


def _percent_at(steps: list[tuple[int, int]], starts_at: datetime, now: datetime) -> int:
    for days, pct in sorted(steps, reverse=True):
        if now <= starts_at - timedelta(days=days):
            return pct
    return 0


def policy_percent(cohort: Cohort, now: datetime) -> int:
    """Percent refunded on withdrawal at ``now`` under the cohort's current schedule: a step applies
    up to and including the instant ``days_before`` days before the cohort starts."""
    return _percent_at(schedule(cohort), cohort.starts_at, now)


def policy_percent_for(enr: Enrollment, now: datetime) -> int:
    """The percent withdrawing at ``now`` gives back to this enrollment: by the schedule in force
    when it applied."""
    return _percent_at(schedule_for(enr), enr.cohort.starts_at, now)
