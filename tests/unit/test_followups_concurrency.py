"""Real threads on PostgreSQL: two submissions of one check-in at the same moment keep exactly one
answer (the other is told it was already answered, no second alert); two plan syncs at once queue
each follow-up once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from retreat.cohorts.models import Cohort
from retreat.extensions import db as _db
from retreat.integration import checkins, followups, links
from retreat.integration.followup_models import CheckInResponse, FollowUp, IntegrationAlert
from retreat.models import OutboxMessage
from tests import followup_helpers as fh
from tests.conftest import is_postgres
from tests.followup_helpers import DUE, NOW

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")


def _run(n, target):
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=target, args=(i, barrier)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_two_simultaneous_answers_keep_one(committing_app):
    app = committing_app
    with app.app_context():
        enr = fh.confirmed(fh.setup())
        link = fh.token_of(fh.followups_of(enr)["checkin_24h"])
        _db.session.commit()
    results: dict[int, str] = {}

    def worker(i, barrier):
        with app.app_context():
            try:
                barrier.wait()
                checkins.answer(link, {"score": str(2 + i), "sleep": "poorly", "difficult": "yes",
                                       "reach_out": "yes"}, now=DUE["checkin_24h"])
                _db.session.commit()
                results[i] = "saved"
            except links.AlreadyAnswered:
                _db.session.rollback()
                results[i] = "already"
            finally:
                _db.session.remove()

    _run(2, worker)
    assert sorted(results.values()) == ["already", "saved"]
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(CheckInResponse)) == 1
        reasons = sorted(a.reason for a in _db.session.scalars(select(IntegrationAlert)))
        assert reasons == ["low_score", "reach_out"]
        assert _db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == "integration_alert")) == 1


def test_simultaneous_syncs_queue_each_follow_up_once(committing_app):
    app = committing_app
    with app.app_context():
        s = fh.setup()
        for _ in range(3):  # confirmed seats written directly: no follow-ups yet
            e = fh.fc.bare_enrollment(s.cohort)
            e.seat, e.status = "confirmed", "deposit_paid"
        cohort_id = s.cohort.id
        _db.session.commit()
        before = _db.session.scalar(select(func.count()).select_from(OutboxMessage))
    errors: list[BaseException] = []

    def worker(i, barrier):
        with app.app_context():
            try:
                barrier.wait()
                followups.sync_cohort(_db.session.get(Cohort, cohort_id), NOW)
                _db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                _db.session.rollback()
                errors.append(exc)
            finally:
                _db.session.remove()

    _run(4, worker)
    assert errors == []
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(FollowUp)) == 15
        assert _db.session.scalar(select(func.count()).select_from(OutboxMessage)) == before + 15
