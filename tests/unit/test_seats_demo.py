"""Demo data: its seat counters agree with the enrollments (seeded through the rules)."""

from sqlalchemy import func, select

from retreat.cli import demo
from retreat.cohorts import seats
from retreat.cohorts.models import Cohort, Enrollment


def test_demo_cohorts_are_consistent(db):
    demo.seed(online=False)
    cohorts = {c.title: c for c in db.session.scalars(select(Cohort))}
    assert {"Spring cohort", "Early spring cohort", "Autumn cohort", "Summer cohort"} <= set(cohorts)
    open_c, full_c, past_c = cohorts["Spring cohort"], cohorts["Early spring cohort"], cohorts["Autumn cohort"]
    assert open_c.capacity == 12 and open_c.status == "open" and open_c.seats_available > 0
    assert full_c.seats_available == 0
    waiting = db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == full_c.id, Enrollment.waitlist_position.is_not(None)))
    assert waiting >= 2
    offered = db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == full_c.id, Enrollment.seat == "offered"))
    assert offered == 1  # the withdrawn seat went to the first person waiting
    assert past_c.status == "completed"
    for c in cohorts.values():
        assert c.seats_taken == seats.count_taken(c.id) <= c.capacity
