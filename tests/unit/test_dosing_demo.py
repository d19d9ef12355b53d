"""Demo dosing day: the demo provider staffs the Spring cohort's dosing sessions; one participant
is ready, one is not (no ride home). Idempotent."""

from datetime import date, timedelta

from sqlalchemy import func, select

from retreat.accounts import users as accounts
from retreat.cli import demo
from retreat.clinical import dosing_board, staffing
from retreat.clinical.dosing_models import DosingAssignment
from retreat.cohorts.models import Cohort, CohortSession
from tests import factories


def test_demo_provider_staffs_the_dosing_sessions_one_ready_one_not(db):
    org = factories.provider_org()
    provider = factories.user("provider", org=org, email="provider@demo.retreat", password=None)
    accounts.add_license(provider, number="DR.1", state="CO", expires_on=date.today() + timedelta(days=700))
    demo.seed_cohorts(org)
    demo.seed_dosing_demo(org)
    demo.seed_dosing_demo(org)
    cohort = db.session.scalar(select(Cohort).where(Cohort.title == "Spring cohort"))
    sessions = list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == "dosing").order_by(CohortSession.starts_at)))
    assert len(sessions) == 2
    assert db.session.scalar(select(func.count()).select_from(DosingAssignment)) == 2
    assert all(c.covered for c in staffing.coverage(sessions).values())
    rows = dosing_board.team_view(sessions[0], provider, now=cohort.starts_at, ctx=None)
    assert [r.status for r in rows].count("ready") == 1
    assert "Not ready: no ride home arranged" in [r.label for r in rows]
