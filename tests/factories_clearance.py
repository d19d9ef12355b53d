"""Factories for intakes and clearance requests: complete answers, a referred participant, decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from retreat.clinical import clearance, screening
from retreat.clinical.models import ClearanceRequest
from retreat.cohorts.models import Cohort, DepositTiming, Enrollment
from retreat.models import ProviderOrganization, User
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc

MARKER = "ZEBRA-MARKER-7431"  # planted in clinical text; must never appear where it should not


def answers(**overrides) -> dict:
    """A complete intake with no flags."""
    out = {q.key: f"none ({q.key})" for q in screening.TEXT_QUESTIONS}
    out.update(emergency_contact_name="Sam Example (partner)", emergency_contact_phone="+1 303 555 0100",
               bp_systolic=118, bp_diastolic=76, height_cm=172, weight_kg=70)
    out.update({c.key: False for c in screening.CONDITIONS})
    out.update({k: 0 for k in screening.PHQ9_KEYS + screening.GAD7_KEYS})
    out.update(overrides)
    return out


def marked_answers(**overrides) -> dict:
    """Every free-text answer carries the marker."""
    marked = {q.key: f"{MARKER} {q.key}"[:q.max_length] for q in screening.TEXT_QUESTIONS}
    return answers(**{**marked, **overrides})


@dataclass
class Setup:
    org: ProviderOrganization
    provider: User
    cohort: Cohort
    enrollment: Enrollment
    now: datetime

    @property
    def participant(self) -> User:
        return self.enrollment.participant


def setup(*, now: datetime | None = None, org: ProviderOrganization | None = None,
          deposit_timing=DepositTiming.AFTER_CLEARANCE, provider_kw: dict | None = None, **cohort_kw) -> Setup:
    """A cohort whose partner organisation has one licensed provider, and one applicant.

    ``now`` defaults to the real clock (web tests, whose views read it); unit tests pass fc.NOW.
    """
    now = now or now_utc()
    org = org or factories.provider_org()
    provider = factories.user("provider", org=org, password=None, **(provider_kw or {}))
    cohort_kw.setdefault("starts_at", now + timedelta(days=60))
    cohort = fc.cohort(provider_organization_id=org.id, deposit_timing=deposit_timing, **cohort_kw)
    enr = fc.applicant(cohort, now=now)
    fc.new_request()
    return Setup(org, provider, cohort, enr, now)


def submit(s: Setup, **answer_overrides) -> ClearanceRequest:
    result = clearance.submit(s.enrollment, s.participant, answers(**answer_overrides), now=s.now)
    fc.new_request()
    return result.request


def decide(s: Setup, req: ClearanceRequest, decision: str = "cleared", **kw) -> ClearanceRequest:
    kw.setdefault("attestation_name", s.provider.name)
    kw.setdefault("expected_version", req.version)
    fc.new_request()  # the steps before it were requests of their own
    req = clearance.decide(req, s.provider, decision=decision, now=kw.pop("now", s.now), **kw)
    fc.new_request()
    return req


def cleared(s: Setup, **kw) -> ClearanceRequest:
    return decide(s, submit(s), "cleared", **kw)


def another_applicant(s: Setup) -> Enrollment:
    enr = fc.applicant(s.cohort, now=s.now)
    fc.new_request()
    return enr


from tests.conftest import signed_in  # noqa: E402,F401  (re-exported for clearance tests)
