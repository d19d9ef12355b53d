"""Seats: holds, expiry with injected time, the database backstop, and 60 threads for 5 seats."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import Cohort, Enrollment, SeatState
from retreat.core.errors import Conflict
from retreat.extensions import db as _db
from tests import factories_cohorts as fc
from tests.conftest import is_postgres
from tests.factories_cohorts import NOW


def test_hold_then_repeat_is_noop_and_expiry_frees_it(db):
    c = fc.cohort(capacity=1, hold_minutes=30)
    enr = fc.applicant(c)
    out = seats.take_hold(enr, now=NOW, actor=None)
    assert out.result == "held" and enr.hold_expires_at == NOW + timedelta(minutes=30)
    again = seats.take_hold(enr, now=NOW + timedelta(minutes=5), actor=None)
    assert again.result == "held" and enr.hold_expires_at == NOW + timedelta(minutes=30)
    assert c.seats_taken == 1
    assert seats.sweep_expired_holds(NOW + timedelta(minutes=29)) == 0
    assert seats.sweep_expired_holds(NOW + timedelta(minutes=30)) == 1
    db.session.flush()
    db.session.expire_all()
    assert enr.seat == SeatState.NONE and c.seats_taken == 0
    assert enr.transitions[-1].event == "hold_expired"


def test_full_cohort_puts_second_payer_on_waitlist_with_clear_message(db):
    c = fc.cohort(capacity=1)
    a, b = fc.applicant(c), fc.applicant(c)
    assert seats.take_hold(a, now=NOW, actor=None).result == "held"
    out = seats.take_hold(b, now=NOW, actor=None)
    assert out.result == "waitlisted"
    assert "last seat was just taken" in out.message and "position 1" in out.message
    assert b.is_waitlisted and c.seats_taken == 1


def test_expired_hold_is_swept_when_someone_else_asks(db):
    c = fc.cohort(capacity=1)
    a, b = fc.applicant(c), fc.applicant(c)
    seats.take_hold(a, now=NOW, actor=None)
    out = seats.take_hold(b, now=NOW + timedelta(minutes=31), actor=None)
    assert out.result == "held"
    db.session.flush()
    db.session.expire_all()
    assert a.seat == SeatState.NONE and b.seat == SeatState.HELD and c.seats_taken == 1


def test_confirm_after_expired_hold_when_full_is_refused(db):
    c = fc.cohort(capacity=1)
    a, b = fc.applicant(c), fc.applicant(c)
    seats.take_hold(a, now=NOW, actor=None)
    seats.take_hold(b, now=NOW + timedelta(minutes=31), actor=None)
    with pytest.raises(Conflict, match="now full"):
        enrollment.confirm_seat(a, now=NOW + timedelta(minutes=32), actor=None)
    assert c.seats_taken == 1


def test_database_refuses_overselling_even_without_the_service(db):
    c = fc.cohort(capacity=2)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.execute(text("UPDATE cohorts SET seats_taken = 3 WHERE id = :id"), {"id": c.id})


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_sixty_threads_for_the_last_five_seats(committing_app):
    app = committing_app
    with app.app_context():
        c = fc.cohort(capacity=10)
        ids = []
        for _ in range(5):  # five seats already confirmed
            e = fc.applicant(c)
            seats.take_hold(e, now=NOW, actor=None)
            enrollment.confirm_seat(e, now=NOW, actor=None)
        for _ in range(60):
            ids.append(fc.bare_enrollment(c).id)
        cohort_id = c.id
        _db.session.commit()

    barrier = threading.Barrier(60)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(enr_id):
        with app.app_context():
            try:
                barrier.wait()
                out = seats.take_hold(enr_id, now=NOW, actor=None)
                _db.session.commit()
                results[enr_id] = out.result
            except BaseException as exc:  # noqa: BLE001
                _db.session.rollback()
                errors.append(exc)
            finally:
                _db.session.remove()

    import time

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - t0
    assert not errors, errors
    assert sorted(results.values()).count("held") == 5
    assert list(results.values()).count("waitlisted") == 55
    with app.app_context():
        cohort = _db.session.get(Cohort, cohort_id)
        assert cohort.seats_taken == 10 == seats.count_taken(cohort_id)
        held = _db.session.scalars(select(Enrollment).where(Enrollment.seat == SeatState.HELD.value)).all()
        assert len(held) == 5
        waiting = _db.session.scalars(select(Enrollment).where(Enrollment.waitlist_position.is_not(None))).all()
        assert sorted(e.waitlist_position for e in waiting) == list(range(1, 56))
    print(f"\n60 concurrent holds for 5 seats: 5 held, 55 waitlisted in {elapsed:.2f}s")


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_mixed_concurrent_traffic_never_oversells_or_deadlocks(committing_app):
    """Holds, confirmations, withdrawals, offer acceptances and both sweeps, all at once."""
    import random

    app = committing_app
    with app.app_context():
        c = fc.cohort(capacity=6, hold_minutes=30)
        ids = [fc.bare_enrollment(c).id for _ in range(40)]
        cohort_id = c.id
        _db.session.commit()

    later = NOW + timedelta(minutes=31)
    errors: list[BaseException] = []
    barrier = threading.Barrier(40)

    def worker(i, enr_id):
        rnd = random.Random(i)
        with app.app_context():
            try:
                barrier.wait()
                for step in range(4):
                    op = rnd.choice(["hold", "hold", "confirm", "withdraw", "accept", "sweep"])
                    enr = _db.session.get(Enrollment, enr_id)
                    try:
                        if op == "hold":
                            seats.take_hold(enr, now=NOW, actor=None)
                        elif op == "confirm" and enr.seat == SeatState.HELD:
                            enrollment.confirm_seat(enr, now=NOW, actor=None)
                        elif op == "withdraw" and step > 1:
                            enrollment.withdraw(enr, now=NOW, actor=None)
                        elif op == "accept" and enr.seat == SeatState.OFFERED:
                            seats.accept_offer(enr, now=NOW, actor=None)
                        elif op == "sweep":
                            seats.sweep_expired_holds(later)
                            enrollment.sweep_expired_offers(NOW + timedelta(hours=49))
                        _db.session.commit()
                    except Conflict:
                        _db.session.rollback()
            except BaseException as exc:  # noqa: BLE001
                _db.session.rollback()
                errors.append(exc)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, e)) for i, e in enumerate(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    with app.app_context():
        cohort = _db.session.get(Cohort, cohort_id)
        assert 0 <= cohort.seats_taken == seats.count_taken(cohort_id) <= cohort.capacity


def test_closed_cohort_still_lets_applicants_pay_but_cancelled_does_not(db):
    from retreat.cohorts.models import CohortStatus

    c = fc.cohort(capacity=2)
    a, b = fc.applicant(c), fc.applicant(c)
    c.status = CohortStatus.CLOSED.value
    assert seats.take_hold(a, now=NOW, actor=None).result == "held"
    c.status = CohortStatus.CANCELLED.value
    with pytest.raises(Conflict, match="not taking bookings"):
        seats.take_hold(b, now=NOW, actor=None)
    assert b.seat == SeatState.NONE
