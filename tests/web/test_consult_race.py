"""Never double-booked: real threads race through the API against a database that really commits."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.consults import publishing
from retreat.consults import slots as free_times
from retreat.extensions import db
from retreat.models import Consultation, User
from retreat.timeutil import now_utc
from tests import factories
from tests.unit.test_consult_support import SETTINGS

THREADS = 40


def _setup(app, **settings):
    with app.app_context():
        fac = factories.user("facilitator", password=None)
        publishing.update_settings(fac, tz="UTC", **{**SETTINGS, "min_notice_minutes": 60, **settings})
        publishing.set_weekly_rules(fac, {d: "00:00-24:00" for d in range(7)})
        db.session.commit()
        now = now_utc()
        first = free_times.free_slots(now + timedelta(days=1), now + timedelta(days=2), now)[0].start
        return fac.id, first


def _race(app, bodies: list[dict]) -> tuple[Counter, list]:
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def worker(i: int, body: dict):
        client = app.test_client()
        barrier.wait()
        r = client.post("/api/v1/consultations", json=body)
        results[i] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(bodies)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - started
    print(f"\n{len(bodies)} concurrent bookings in {elapsed:.2f} s: {Counter(s for s, _ in results)}")
    return Counter(s for s, _ in results), results


def _body(i: int, start, facilitator_id=None) -> dict:
    return {"start": start.isoformat(), "facilitator_id": facilitator_id, "name": f"Racer {i}",
            "email": "racer@example.com" if i % 2 else f"racer{i}@example.com", "timezone": "Europe/Berlin",
            "answers": {}}


@pytest.mark.slow
def test_forty_concurrent_bookings_for_one_time_exactly_one_wins(committing_app):
    fid, start = _setup(committing_app)
    statuses, results = _race(committing_app, [_body(i, start, fid if i % 3 else None) for i in range(THREADS)])
    assert statuses == Counter({201: 1, 409: THREADS - 1})
    for status, body in results:
        if status == 409:
            assert body["error"] and body["reason"] == "taken" and "next_slots" in body
    with committing_app.app_context():
        assert db.session.scalar(select(func.count(Consultation.id))) == 1
        # Same-email racers share one participant account; nobody got a 500 from the unique email.
        assert db.session.scalar(select(func.count(User.id)).where(User.email == "racer@example.com")) <= 1


@pytest.mark.slow
def test_race_across_two_start_times_whose_buffered_ranges_overlap(committing_app):
    # 30-minute calls with a 15-minute after-buffer: a 10:00 call blocks until 10:45, so a 10:30 call
    # (whose call time does not overlap) can not also be booked.
    fid, start = _setup(committing_app, buffer_after_minutes=15)
    other = start + timedelta(minutes=30)
    bodies = [_body(i, start if i % 2 else other, fid) for i in range(THREADS)]
    statuses, _ = _race(committing_app, bodies)
    assert statuses == Counter({201: 1, 409: THREADS - 1})
    with committing_app.app_context():
        rows = db.session.execute(select(Consultation.start_at, Consultation.blocked_end)).all()
        assert len(rows) == 1 and rows[0].start_at in (start, other)
