"""The scheduler is only the clock: each feature's sweep is registered and runs as a job of ``now``."""

from datetime import timedelta

from retreat import scheduler
from retreat.cohorts import seats
from retreat.cohorts.models import SeatState
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def test_feature_sweeps_are_registered():
    assert {"outbox.dispatch", "seats.expire_holds", "waitlist.expire_offers", "clearance.expire",
            "refunds.submit_pending", "finance.payouts_requested"} <= set(scheduler.registered_jobs())


def test_the_hold_sweep_job_frees_an_expired_hold_and_offers_the_seat(db):
    c = fc.cohort(capacity=1, hold_minutes=30)
    holder, waiting = fc.applicant(c), fc.applicant(c)
    seats.take_hold(holder, now=NOW, actor=None)
    assert seats.take_hold(waiting, now=NOW + timedelta(minutes=1), actor=None).result == "waitlisted"
    job = scheduler.registered_jobs()["seats.expire_holds"]
    assert job.func(NOW + timedelta(minutes=29)) == 0
    assert job.func(NOW + timedelta(minutes=30)) == 1
    db.session.flush()
    db.session.expire_all()
    assert holder.seat == SeatState.NONE
    assert waiting.seat == SeatState.OFFERED  # the freed seat went to the next person waiting


def test_the_other_sweeps_run_on_an_empty_database(db):
    for name in ("waitlist.expire_offers", "clearance.expire", "refunds.submit_pending",
                 "finance.payouts_requested"):
        scheduler.registered_jobs()[name].func(NOW)
