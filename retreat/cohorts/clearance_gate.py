"""The clearance gate: "does this enrollment hold a valid clearance on date D?", asked by seats
(confirming a seat), payments (taking a deposit that needs clearance) and the check-in of a dosing
session, and answered by one rule that lives in ``retreat.clinical.clearance_validity``.

Why a registry and not a signal or an import: the askers (cohorts, payments) sit below clinical in
the layers, so they may not import it, and a signal only tells subscribers something happened; it
gives no answer back. So, like the dispatcher's opt-out check (``messaging.unsubscribe``,
registered by ``accounts.preferences``), clinical registers its rule here when it is imported
(``retreat.subscriptions``, which the app factory imports), and the askers call ``verdicts`` /
``require``. No rule registered is a wiring bug, not "everyone is cleared": it raises.

D is always the cohort's local date (``cohort_today`` for "now"; a session's local date for a
check-in), so a clearance valid "until 12 May" is valid all of 12 May in the cohort's zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import Conflict
from retreat.timeutil import local_date

VALID, NOT_CLEARED, LAPSED, IN_REVIEW, LICENCE = "valid", "not_cleared", "lapsed", "in_review", "licence"


@dataclass(frozen=True)
class Verdict:
    """The answer for one enrollment on one date, without clinical details (safe for facilitators)."""

    key: str  # VALID | NOT_CLEARED | LAPSED | IN_REVIEW | LICENCE
    label: str  # "Cleared until Tue 12 May 2026", "Not cleared", "Clearance lapsed (valid until ...)"

    @property
    def ok(self) -> bool:
        return self.key == VALID

    @property
    def reason(self) -> str:
        """The label inside a sentence ("... : clearance lapsed (valid until Wed 11 Mar 2026)")."""
        return self.label[:1].lower() + self.label[1:]


Rule = Callable[[list[Enrollment], date], dict[int, Verdict]]
_rules: list[Rule] = []


def register(rule: Rule) -> None:
    """``rule(enrollments, day)`` answers, for each enrollment id, whether it is validly cleared on ``day``."""
    if rule not in _rules:
        _rules.append(rule)


def cohort_today(cohort: Cohort, now: datetime) -> date:
    return local_date(now, cohort.timezone)


def verdicts(enrollments: Iterable[Enrollment], day: date) -> dict[int, Verdict]:
    if not _rules:
        raise RuntimeError("no clearance rule registered: import retreat.clinical.clearance_validity first")
    enrs = list(enrollments)
    return _rules[-1](enrs, day) if enrs else {}


def verdict(enr: Enrollment, day: date) -> Verdict:
    return verdicts([enr], day)[enr.id]


def require(enr: Enrollment, *, now: datetime, doing: str) -> None:
    """Conflict (saying why) unless ``enr`` is validly cleared on its cohort's date today; ``doing``
    completes the sentence, e.g. "your seat can be confirmed"."""
    v = verdict(enr, cohort_today(enr.cohort, now))
    if not v.ok:
        raise Conflict(f"A valid medical clearance is needed before {doing}: {v.reason}.",
                       field="clearance")
