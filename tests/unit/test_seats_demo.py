"""Demo data: idempotent, and its seat counters agree with the enrollments."""

from sqlalchemy import func, select

from retreat.cli import demo
from retreat.cohorts import seats
from retreat.cohorts.models import Cohort, Enrollment
from tests import factories


def test_demo_cohorts_are_idempotent_and_consistent(db):
    # seed() calls seed_cohorts(org); calling it directly skips hashing the demo staff passwords.
    org = factories.provider_org()
    demo.seed_cohorts(org)
    demo.seed_cohorts(org)
    cohorts = {c.title: c for c in db.session.scalars(select(Cohort))}
    assert {"Spring cohort", "Early spring cohort", "Autumn cohort"} <= set(cohorts)
    open_c, full_c, past_c = cohorts["Spring cohort"], cohorts["Early spring cohort"], cohorts["Autumn cohort"]
    assert open_c.capacity == 12 and open_c.status == "open" and open_c.seats_available > 0
    assert full_c.seats_available == 0
    waiting = db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == full_c.id, Enrollment.waitlist_position.is_not(None)))
    assert waiting >= 2
    assert past_c.status == "completed"
    for c in (open_c, full_c, past_c):
        assert c.seats_taken == seats.count_taken(c.id) <= c.capacity
