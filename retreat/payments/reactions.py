"""How payments follows the enrollment pipeline and the cohort's dates (``retreat.core.signals``).

- ``seat_cleared``: someone who paid everything before being cleared (a cohort that takes the
  deposit first) reaches ``balance_paid`` at the clearance, not "deposit paid" with nothing left
  to pay (from where they could never be marked attended).
- ``cohort_schedule_changed`` with ``previous_start``: a cohort without its own balance date has
  its balance due ``DUE_BEFORE_START`` before its start (``balances.balance_due_on``), so when the
  start moves, the unpaid installments of every plan move by as many days and their pending
  reminders with them. A balance date the facilitator typed stays (the cohort form says so).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts import enrollment as enrollment_svc
from retreat.cohorts.models import EXITS, Cohort, Enrollment, EnrollmentStatus
from retreat.core import signals
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.payments import balances, checkout, pricing
from retreat.timeutil import local_date
from retreat.timeutil import zone as tz_zone


@signals.seat_cleared.connect(order=10)
def balance_paid_on_clearance(enr: Enrollment, *, now: datetime, actor: User | None) -> None:
    if enr.status == EnrollmentStatus.DEPOSIT_PAID and pricing.quote(enr).balance <= 0:
        enrollment_svc.mark_balance_paid(enr, now=now, actor=actor)


@signals.cohort_schedule_changed.connect(order=20)
def balance_follows_the_start(cohort: Cohort, *, now: datetime, previous_start: datetime | None = None, **_) -> None:
    if previous_start is None or cohort.balance_due_on is not None:
        return
    shift = balances.balance_due_on(cohort) - balances.balance_due_date(None, previous_start, cohort.timezone)
    if not shift:
        return
    today = local_date(now, cohort.timezone)
    for enr in db.session.scalars(select(Enrollment).where(
            Enrollment.cohort_id == cohort.id, Enrollment.status.not_in([st.value for st in EXITS]))
            .order_by(Enrollment.id)):
        rows = [r for r in checkout.installment_progress(enr) if r["remaining"] > 0]
        for row in rows:
            inst = row["installment"]
            inst.due_on, inst.updated_at = max(inst.due_on + shift, today), now
            _move_reminders(enr, inst, now=now, total=len(checkout.current_installments(enr)))


def _move_reminders(enr: Enrollment, inst, *, now: datetime, total: int) -> None:
    """Pending reminders move to the installment's new due date (passed ones are cancelled); any
    that was never queued because its time had passed is queued now."""
    zone = tz_zone(enr.participant.tz)
    for name, days in checkout.REMINDERS:
        key = f"installment-{inst.id}-{name}"
        at = datetime.combine(inst.due_on + timedelta(days=days), time(9, 0), zone)
        if at <= now and name != "overdue":
            outbox.cancel(dedupe_keys=[key], now=now)
            continue
        msg = outbox.reschedule(key, max(at, now), now=now)
        if msg is not None:
            msg.context = {**msg.context, "due_on": inst.due_on.isoformat()}
    checkout.queue_reminders(enr, inst, now=now, total=total)

