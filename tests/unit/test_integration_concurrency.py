"""Two facilitators open a new cohort's integration page (or save its plan) at the same moment:
one plan, one set of circles, one invite per circle and participant; of two saves from the same
version exactly one wins (PostgreSQL, real threads)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from retreat.cohorts import enrollment
from retreat.cohorts.models import Cohort, CohortSession
from retreat.core.errors import Conflict
from retreat.extensions import db as _db
from retreat.integration import circles as ic
from retreat.integration import plan as ip
from retreat.models import IntegrationPlan, OutboxMessage, User
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import is_postgres

NOW = datetime(2026, 1, 10, 17, 0, tzinfo=UTC)
pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")


def _run(workers):
    barrier = threading.Barrier(len(workers))
    errors = []

    def wrap(fn):
        try:
            fn(barrier)
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.parametrize("plan_exists", [False, True])
def test_simultaneous_first_syncs_make_one_plan_and_one_set_of_circles(committing_app, plan_exists):
    app = committing_app
    with app.app_context():
        c = fc.cohort(starts_at=datetime(2026, 2, 16, 16, tzinfo=UTC), ends_at=datetime(2026, 2, 21, 17, tzinfo=UTC))
        enr = fc.cleared(c, now=NOW)
        enrollment.confirm_seat(enr, now=NOW, actor=None)
        if plan_exists:
            ip.ensure_plan(c, NOW)  # e.g. created by an earlier visit, circles not yet generated
        cohort_id = c.id
        _db.session.commit()

    def worker(barrier):
        with app.app_context():
            try:
                cohort = _db.session.get(Cohort, cohort_id)
                barrier.wait()
                ic.plan_changed(cohort, NOW)
                _db.session.commit()
            finally:
                _db.session.remove()

    assert _run([worker, worker]) == []
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(IntegrationPlan)) == 1
        assert _db.session.scalar(select(func.count()).select_from(CohortSession).where(
            CohortSession.cohort_id == cohort_id)) == 6
        invites = _db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == "circle_invite"))
        assert invites == 6


def test_two_saves_from_the_same_version_one_wins(committing_app):
    app = committing_app
    with app.app_context():
        c = fc.cohort(starts_at=datetime(2026, 2, 16, 16, tzinfo=UTC), ends_at=datetime(2026, 2, 21, 17, tzinfo=UTC))
        plan = ip.ensure_plan(c, NOW)
        ic.sync_circles(c, NOW)
        actor = factories.user("facilitator", password=None)
        ids = {"plan": plan.id, "actor": actor.id}
        _db.session.commit()
    results = {}

    def saver(weekday):
        def run(barrier):
            with app.app_context():
                try:
                    p = _db.session.get(IntegrationPlan, ids["plan"])
                    who = _db.session.get(User, ids["actor"])
                    form = {"circle_weeks": "6", "circle_weekday": weekday, "circle_local_time": "18:00",
                            "circle_duration_minutes": "90", "circle_video_url": "https://meet.example/x"}
                    barrier.wait()
                    ic.update_plan(p, form, expected_version=1, actor=who, now=NOW)
                    _db.session.commit()
                    results[weekday] = "saved"
                except Conflict:
                    _db.session.rollback()
                    results[weekday] = "stale"
                finally:
                    _db.session.remove()
        return run

    assert _run([saver("3"), saver("4")]) == []
    assert sorted(results.values()) == ["saved", "stale"]
    winner = next(k for k, v in results.items() if v == "saved")
    with app.app_context():
        p = _db.session.get(IntegrationPlan, ids["plan"])
        assert p.version == 2 and p.circle_weekday == int(winner)
        circles = ic.plan_circles(p.cohort)
        assert len(circles) == 6
        assert {s.starts_at.astimezone(ip.zone(p.cohort.timezone)).weekday() for s in circles} == {int(winner)}
