"""core.locking: one lock order, ascending ids, a lock timeout, refused without a transaction."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from retreat.cohorts.models import Cohort, Enrollment
from retreat.core import locking
from retreat.extensions import db as _db
from retreat.payments.models import Payment
from tests import factories_cohorts as fc
from tests.conftest import _ConnectionBoundSession, is_postgres


def test_rows_are_locked_in_ascending_id_order_and_returned_so(db):
    c = fc.cohort(capacity=10)
    enrs = [fc.bare_enrollment(c) for _ in range(3)]
    db.session.commit()
    ids = [e.id for e in enrs]
    rows = locking.lock_many(Enrollment, reversed(ids))
    assert [r.id for r in rows] == sorted(ids)
    assert locking.held() == [("enrollments", i) for i in sorted(ids)]


def test_a_lock_out_of_order_is_refused_and_a_relock_is_a_refresh(db):
    c = fc.cohort(capacity=10)
    e1, e2 = fc.bare_enrollment(c), fc.bare_enrollment(c)
    db.session.commit()
    locking.lock(Enrollment, e2.id)
    assert locking.lock(Enrollment, e2.id).id == e2.id  # already held: allowed
    with pytest.raises(locking.LockOrderError, match="ascending id"):
        locking.lock(Enrollment, e1.id)  # a lower id after a higher one
    with pytest.raises(locking.LockOrderError, match="cohorts"):
        locking.lock(Cohort, c.id)  # a cohort after its enrollments


def test_a_held_cohort_covers_its_subtree_but_not_another_cohort_before_it(db):
    c1, c2 = fc.cohort(capacity=10), fc.cohort(capacity=10)
    e1, e2 = fc.bare_enrollment(c2), fc.bare_enrollment(c2)
    db.session.commit()
    locking.lock(Cohort, c2.id)
    locking.lock(Enrollment, e2.id)
    assert locking.lock(Enrollment, e1.id).id == e1.id  # below the cohort: the order its rule needs
    assert locking.lock(Cohort, c2.id).id == c2.id  # the cohort itself is held: a refresh
    with pytest.raises(locking.LockOrderError, match="cohorts"):
        locking.lock(Cohort, c1.id)  # a lower cohort after a higher one is still refused


def test_the_order_starts_again_with_each_transaction(db):
    c = fc.cohort(capacity=10)
    e = fc.bare_enrollment(c)
    db.session.commit()
    locking.lock(Enrollment, e.id)
    db.session.commit()
    assert locking.held() == []
    assert locking.lock(Cohort, c.id) is not None  # a new transaction may start with the cohort


def test_a_missing_row_is_none_and_an_unknown_table_is_refused(db):
    assert locking.lock(Cohort, 987654) is None

    class NotListed:
        __table__ = type("T", (), {"name": "not_a_listed_table"})()
        id = None

    with pytest.raises(locking.LockOrderError, match="LOCK_ORDER"):
        locking.lock(NotListed, 1)


def test_every_table_the_code_locks_is_in_the_order():
    from retreat.models import Base

    tables = set(Base.metadata.tables)
    assert set(locking.LOCK_ORDER) <= tables
    assert locking.LOCK_ORDER.index("cohorts") < locking.LOCK_ORDER.index("enrollments") \
        < locking.LOCK_ORDER.index("payments") < locking.LOCK_ORDER.index("refunds")
    assert Payment.__table__.name in locking.LOCK_ORDER


def test_refused_on_an_autocommit_connection(app):
    with app.app_context():
        conn = _db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        session = _db._make_scoped_session({"bind": conn, "class_": _ConnectionBoundSession})
        original = _db.session
        _db.session = session
        try:
            with pytest.raises(locking.NotInTransaction):
                locking.lock(Cohort, 1)
        finally:
            session.remove()
            _db.session = original
            conn.close()


@pytest.mark.skipif(not is_postgres(), reason="row locks and lock_timeout need PostgreSQL")
def test_a_waiter_gives_up_after_the_lock_timeout_instead_of_hanging(committing_app):
    app = committing_app
    app.config["LOCK_TIMEOUT_MS"] = 300
    with app.app_context():
        c = fc.cohort(capacity=10)
        _db.session.commit()
        cohort_id = c.id
    held = threading.Event()
    release = threading.Event()
    outcome: dict = {}

    def holder():
        with app.app_context():
            locking.lock(Cohort, cohort_id)
            held.set()
            release.wait(10)
            _db.session.rollback()
            _db.session.remove()

    def waiter():
        with app.app_context():
            held.wait(10)
            t0 = time.perf_counter()
            try:
                locking.lock(Cohort, cohort_id)
                outcome["result"] = "locked"
            except OperationalError as exc:
                outcome["result"] = "timeout" if "lock timeout" in str(exc) else str(exc)
                _db.session.rollback()
            outcome["waited"] = time.perf_counter() - t0
            _db.session.remove()

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for t in threads:
        t.start()
    threads[1].join(10)
    release.set()
    threads[0].join(10)
    assert outcome["result"] == "timeout"
    assert 0.25 < outcome["waited"] < 3
