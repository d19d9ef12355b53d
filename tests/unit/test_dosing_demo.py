"""Demo dosing day: the demo provider staffs the Spring cohort's dosing sessions; one participant
is ready (Alex, with a driver), one is not (Blair, no ride home). Idempotent."""

from sqlalchemy import func, select

from retreat.cli import demo
from retreat.clinical import dosing_board, staffing
from retreat.clinical.dosing_models import DosingAssignment
from retreat.cohorts import preparation
from retreat.cohorts.models import Cohort, CohortSession, Enrollment


def test_demo_provider_staffs_the_dosing_sessions_one_ready_one_not(db):
    demo.seed(online=False)
    org = demo.staff("provider").provider_organization
    demo.seed_dosing_demo(org)  # idempotent
    provider = demo.staff("provider")
    cohort = db.session.scalar(select(Cohort).where(Cohort.title == "Spring cohort"))
    sessions = list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == "dosing").order_by(CohortSession.starts_at)))
    assert len(sessions) == 2
    assert db.session.scalar(select(func.count()).select_from(DosingAssignment)) == 2
    assert all(c.covered for c in staffing.coverage(sessions).values())
    rows = dosing_board.team_view(sessions[0], provider, now=cohort.starts_at, ctx=None)
    by_name = {r.name: r for r in rows}
    assert by_name["Alex Rivera"].status == "ready"
    assert by_name["Blair Chen"].label == "Not ready: no ride home arranged"
    alex = db.session.scalar(select(Enrollment).join(Enrollment.participant).where(
        Enrollment.cohort_id == cohort.id).order_by(Enrollment.id))
    assert alex.participant.name == "Alex Rivera"
    ride = preparation.ride_home_from(preparation.get_item(alex, "ride_home").answer)
    assert (ride.name, ride.phone, ride.named) == ("Sam Rivera", "+13035550199", True)  # the named driver
