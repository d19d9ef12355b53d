"""Dosing board under refresh: a 12-person dosing session, 4 clinicians of the organisation each
refreshing the board's JSON state (what the board's script polls) and the board page, in threads,
against a bare endpoint of the same server as the baseline.

    python -m bench dosing [--rounds 40]

Reports the median and p95 of each, and the ratio of the board's median to the bare endpoint's
(the cost of the board itself: readiness, records, entries, the audit events of each read).
Database: BENCH_DATABASE_URL if set (emptied and rebuilt), else a scratch SQLite file (threads
then serialise on SQLite's lock, so use PostgreSQL for the concurrent figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from bench import print_table, write_results

PEOPLE = 12
CLINICIANS = 4
FIELD_KEY = "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E="


def make_app(db_url: str, instance: str):
    from retreat import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
                       "SECRET_KEY_GENERATED": False, "SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_DIR": instance,
                       "MAIL_OUTBOX_DIR": str(Path(instance) / "outbox"), "WTF_CSRF_ENABLED": False,
                       "RATELIMIT_ENABLED": False, "CLINICAL_DATA_KEYS": FIELD_KEY, "BASE_URL": "http://localhost",
                       "REQUIRE_STAFF_TOTP_DEFAULT": False, "ENV_NAME": "testing"})


def seed(app) -> tuple[int, list[int]]:
    """A cohort in CO with one dosing session staffed by 4 clinicians and 12 people mid-session."""
    from retreat.accounts.models import ProviderLicense, ProviderOrganization, User
    from retreat.clinical import staffing
    from retreat.clinical.dosing_models import DosingEntry, DosingRecord
    from retreat.cohorts.models import Cohort, CohortSession, Enrollment, Retreat
    from retreat.core.crypto import encrypt_field
    from retreat.extensions import db
    from retreat.timeutil import now_utc

    with app.app_context():
        db.drop_all()
        db.create_all()
        now = now_utc()
        org = ProviderOrganization(name="Bench Medical")
        db.session.add(org)
        db.session.flush()
        clinicians = []
        for i in range(CLINICIANS):
            u = User(email=f"bench-md{i}@example.com", name=f"Clinician {i}", role="provider", tz="America/Denver",
                     provider_organization_id=org.id)
            db.session.add(u)
            db.session.flush()
            db.session.add(ProviderLicense(user_id=u.id, number=f"MD{i}", state="CO", kind="MD",
                                           expires_on=date.today() + timedelta(days=365)))
            clinicians.append(u)
        r = Retreat(slug="bench", title="Bench retreat", region="CO", country="US")
        db.session.add(r)
        db.session.flush()
        c = Cohort(retreat_id=r.id, title="Bench cohort", starts_at=now - timedelta(hours=3),
                   ends_at=now + timedelta(days=5), capacity=PEOPLE, seats_taken=PEOPLE, price_minor=100000,
                   deposit_minor=10000, provider_organization_id=org.id, status="open")
        db.session.add(c)
        db.session.flush()
        s = CohortSession(cohort_id=c.id, kind="dosing", title="Dosing", starts_at=now - timedelta(hours=1),
                          ends_at=now + timedelta(hours=4))
        db.session.add(s)
        db.session.flush()
        db.session.commit()
        for u in clinicians:
            db.session.expire(u)
            staffing.assign(s, u, actor=clinicians[0])
        for i in range(PEOPLE):
            p = User(email=f"bench-p{i}@example.com", name=f"Person {i:02d}", role="participant", tz="America/Denver")
            db.session.add(p)
            db.session.flush()
            e = Enrollment(cohort_id=c.id, participant_id=p.id, status="deposit_paid", seat="confirmed",
                           applied_at=now, holds_taken=1, offers_made=0, motivation="", lodging="")
            db.session.add(e)
            db.session.flush()
            rec = DosingRecord(session_id=s.id, enrollment_id=e.id, state="in_session", version=5,
                               next_check_due_at=now + timedelta(minutes=10))
            db.session.add(rec)
            db.session.flush()
            for k, kind in enumerate(("check_in", "pre_vitals", "dose", "check")):
                db.session.add(DosingEntry(record_id=rec.id, kind=kind, idempotency_key=str(uuid.uuid4()),
                                           body_enc=encrypt_field(json.dumps({"observation": f"entry {k}"})),
                                           actor_id=clinicians[0].id, at=now, recorded_at=now, version_after=k + 2))
        db.session.commit()
        return s.id, [u.id for u in clinicians]


def _client(app, user_id: int):
    from tests.conftest import login_as

    client = app.test_client()
    with app.app_context():
        from retreat.extensions import db
        from retreat.models import User

        login_as(app, client, db.session.get(User, user_id))
        db.session.commit()
    return client


def _timed(client, path: str, times: list[float]) -> None:
    t0 = time.perf_counter()
    r = client.get(path)
    times.append(time.perf_counter() - t0)
    assert r.status_code == 200, (path, r.status_code)


def run(app, session_id: int, clinician_ids: list[int], rounds: int) -> dict:
    clients = [_client(app, uid) for uid in clinician_ids]
    paths = {"bare": "/healthz", "state": f"/provider/dosing/{session_id}/state.json",
             "board": f"/provider/dosing/{session_id}"}
    out = {}
    for name, path in paths.items():
        times: list[float] = []
        _timed(clients[0], path, [])  # warm

        def worker(c, path=path, times=times):
            for _ in range(rounds):
                _timed(c, path, times)

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        times.sort()
        out[name] = {"median_ms": statistics.median(times) * 1000, "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
                     "requests": len(times), "per_s": len(times) / wall}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dosing")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-dosing-")
    db_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
    app = make_app(db_url, tmp)
    session_id, clinicians = seed(app)
    res = run(app, session_id, clinicians, args.rounds)
    bare = res["bare"]["median_ms"]
    rows = [[k, f"{v['median_ms']:.1f}", f"{v['p95_ms']:.1f}", f"{v['per_s']:.0f}", f"{v['median_ms'] / bare:.1f}x"]
            for k, v in res.items()]
    print(f"Dosing board: {PEOPLE} people, {CLINICIANS} clinicians refreshing, {args.rounds} rounds each ({db_url.split(':')[0]})")
    print_table(["endpoint", "median ms", "p95 ms", "req/s", "ratio to bare"], rows)
    write_results("dosing", {"people": PEOPLE, "clinicians": CLINICIANS, "rounds": args.rounds, "results": res,
                             "ratio_state": res["state"]["median_ms"] / bare, "ratio_board": res["board"]["median_ms"] / bare})
    return 0
