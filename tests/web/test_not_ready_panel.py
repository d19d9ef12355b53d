"""The facilitator home's "not ready for the next dosing day" panel: registered by the dosing-day
rules (one readiness rule), for the facilitator's team cohorts whose next dosing session is within
14 days; each person, what is missing (no clinical detail) and a link; statements constant in people."""

from __future__ import annotations

from datetime import timedelta

from retreat.cohorts import readiness as readiness_panel
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.extensions import db as _db
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.unit.test_dosing_readiness import _prepared
from tests.web.test_finance_query_counts import counting


def _cohort_with(n_ready: int, n_not: int, *, days_ahead: int, facilitator):
    now = now_utc()
    c = fc.cohort(capacity=n_ready + n_not + 1, starts_at=now + timedelta(days=days_ahead - 1))
    s = CohortSession(cohort=c, kind=SessionKind.DOSING, title="Dosing day 1",
                      starts_at=now + timedelta(days=days_ahead), ends_at=now + timedelta(days=days_ahead, hours=4),
                      facilitator_id=facilitator.id)
    _db.session.add(s)
    _db.session.flush()
    people = []
    for i in range(n_ready + n_not):
        e = fc.cleared(c, now=now, name=f"Person {i:02d} {'Ready' if i < n_ready else 'Noride'}")
        e.seat = "confirmed"
        _prepared(e, skip=() if i < n_ready else ("ride_home",))
        people.append(e)
    _db.session.commit()
    return c, s, people


def _home(app, fac):
    client = signed_in(app, fac)
    client.get("/facilitator/")
    with counting() as statements:
        r = client.get("/facilitator/")
    assert r.status_code == 200
    return len(statements), r.get_data(as_text=True)


def test_the_home_lists_who_is_not_ready_with_what_is_missing_and_a_link(app, db):
    assert readiness_panel.not_ready(factories.user("facilitator", password=None), now_utc()) is not None  # registered
    fac = factories.user("facilitator", password=None)
    other = factories.user("facilitator", password=None)
    c, s, people = _cohort_with(1, 2, days_ahead=5, facilitator=fac)
    _cohort_with(0, 1, days_ahead=20, facilitator=fac)  # beyond 14 days: not listed
    _, page = _home(app, fac)
    assert "Not ready for the next dosing day" in page
    for e in people[1:]:
        assert f'href="/facilitator/enrollments/{e.id}">{e.participant.name}</a>' in page
    assert "missing: no ride home arranged" in page
    assert people[0].participant.name not in page  # ready
    assert "Noride" not in _home(app, other)[1]  # another team's cohort
    assert page.count("Noride") == 2
    follow = signed_in(app, fac).get(f"/facilitator/enrollments/{people[1].id}")
    assert follow.status_code == 200


def test_the_home_with_the_panel_costs_the_same_for_2_and_12_people(app, db):
    fac_small = factories.user("facilitator", password=None)
    _cohort_with(1, 2, days_ahead=5, facilitator=fac_small)
    fac_large = factories.user("facilitator", password=None)
    _cohort_with(4, 8, days_ahead=5, facilitator=fac_large)
    small, small_page = _home(app, fac_small)
    large, large_page = _home(app, fac_large)
    assert small_page.count("Noride</a>") == 2 and large_page.count("Noride</a>") == 8
    assert large == small, (small, large)
    print(f"facilitator home with the not-ready panel: {small} statements for 3 and for 12 people")
