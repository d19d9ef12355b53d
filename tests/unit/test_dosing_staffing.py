"""Staffing a dosing session: licence by date, kind and region; coverage and the 14-day warning."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from retreat.accounts.models import ProviderLicense
from retreat.clinical import staffing
from retreat.clinical.dosing_models import DosingSettings
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.core.errors import NotFound, PermissionDenied, ValidationFailed
from retreat.extensions import db
from retreat.models import AuditEvent
from tests import factories
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def _setup(region="CO", days_ahead=10):
    org = factories.provider_org()
    lead = factories.user("provider", org=org)
    c = fc.cohort(fc.retreat(region=region), provider_organization_id=org.id, starts_at=NOW + timedelta(days=days_ahead))
    s = CohortSession(cohort=c, kind=SessionKind.DOSING, title="Dosing day 1", starts_at=c.starts_at + timedelta(days=1),
                      ends_at=c.starts_at + timedelta(days=1, hours=5))
    db.session.add(s)
    db.session.flush()
    return org, lead, s


def _clinician(org, *, kind="MD", state="CO", expires: date | None = None):
    u = factories.user("provider", org=org, password=None)
    for lic in list(u.licenses):
        db.session.delete(lic)
    db.session.flush()
    db.session.add(ProviderLicense(user=u, number=f"L{u.id}", state=state, kind=kind,
                                   expires_on=expires or date(2030, 1, 1)))
    db.session.flush()
    db.session.expire(u)
    return u


def test_a_licence_valid_on_the_day_in_the_region_of_an_accepted_kind_is_assigned(db):
    org, lead, s = _setup()
    md = _clinician(org)
    a = staffing.assign(s, md, actor=lead)
    assert (a.license_kind, a.license_state) == ("MD", "CO")
    assert staffing.assign(s, md, actor=lead).id == a.id  # repeating is a no-op
    assert db.session.query(AuditEvent).filter_by(action="dosing.clinician_assigned").count() == 1
    cover = staffing.coverage([s])[s.id]
    assert cover.covered and cover.clinicians == [(md.name, "MD · CO")]


@pytest.mark.parametrize("kw, reason", [
    ({"state": "NM"}, "the licence is for NM, the retreat is in CO"),
    ({"kind": "RN"}, "not a kind the organisation accepts"),
])
def test_wrong_region_or_kind_is_refused_with_the_reason(db, kw, reason):
    org, lead, s = _setup()
    with pytest.raises(ValidationFailed) as err:
        staffing.assign(s, _clinician(org, **kw), actor=lead)
    assert reason in str(err.value) and err.value.field == "clinician_id"
    assert staffing.coverage([s])[s.id].clinicians == []


def test_a_licence_expiring_the_day_before_the_session_is_refused_the_day_of_is_accepted(db):
    org, lead, s = _setup()
    day = staffing.session_day(s)
    with pytest.raises(ValidationFailed, match="expires on"):
        staffing.assign(s, _clinician(org, expires=day - timedelta(days=1)), actor=lead)
    staffing.assign(s, _clinician(org, expires=day), actor=lead)
    assert staffing.coverage([s])[s.id].covered


def test_the_organisations_accepted_kinds_decide(db):
    org, lead, s = _setup()
    db.session.add(DosingSettings(organization_id=org.id, accepted_license_kinds="MD,RN"))
    db.session.flush()
    staffing.assign(s, _clinician(org, kind="RN"), actor=lead)
    with pytest.raises(ValidationFailed, match="not a kind"):
        staffing.assign(s, _clinician(org, kind="NP"), actor=lead)


def test_a_retreat_without_region_cannot_be_staffed(db):
    org, lead, s = _setup(region="")
    with pytest.raises(ValidationFailed, match="no state or region"):
        staffing.assign(s, _clinician(org), actor=lead)


def test_other_organisations_can_neither_see_nor_staff(db):
    org, lead, s = _setup()
    other = factories.provider_org()
    stranger = factories.user("provider", org=other)
    with pytest.raises(NotFound):
        staffing.dosing_session_for(s.id, other)
    assert staffing.dosing_session_for(s.id, org) is s
    with pytest.raises(PermissionDenied):
        staffing.assign(s, _clinician(org), actor=stranger)
    with pytest.raises(ValidationFailed, match="of your organisation"):
        staffing.assign(s, _clinician(other), actor=lead)


def test_uncovered_sessions_in_the_next_14_days_are_listed_until_covered(db):
    org, lead, s = _setup(days_ahead=5)
    _, _, far = _setup(days_ahead=40)
    assert staffing.uncovered_soon(NOW) == [s]
    md = _clinician(org)
    staffing.assign(s, md, actor=lead)
    assert staffing.uncovered_soon(NOW) == []
    assert staffing.unassign(s, md.id, actor=lead)
    assert not staffing.unassign(s, md.id, actor=lead)  # already gone
    assert staffing.uncovered_soon(NOW, cohort_ids=[s.cohort_id]) == [s]
    assert far not in staffing.uncovered_soon(NOW)
