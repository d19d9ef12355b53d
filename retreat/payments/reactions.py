"""How payments follows the enrollment pipeline and the cohort's dates (``retreat.core.signals``).

- ``seat_cleared``: someone who paid everything before being cleared (a cohort that takes the
  deposit first) reaches ``balance_paid`` at the clearance, not "deposit paid" with nothing left
  to pay (from where they could never be marked attended).
"""

from __future__ import annotations

from datetime import datetime

from retreat.accounts.models import User
from retreat.cohorts import enrollment as enrollment_svc
from retreat.cohorts.models import Enrollment, EnrollmentStatus
from retreat.core import signals
from retreat.payments import pricing


@signals.seat_cleared.connect(order=10)
def balance_paid_on_clearance(enr: Enrollment, *, now: datetime, actor: User | None) -> None:
    if enr.status == EnrollmentStatus.DEPOSIT_PAID and pricing.quote(enr).balance <= 0:
        enrollment_svc.mark_balance_paid(enr, now=now, actor=actor)
