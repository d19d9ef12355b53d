"""Consult booking under load: gunicorn (4 workers) on PostgreSQL, side by side with a bare Flask endpoint.

    python -m bench.consults [--requests 800] [--bookings 200] [--threads 16] [--workers 4]

Prints requests per second of the slots endpoint and of the booking endpoint next to a bare
Flask endpoint served by the same gunicorn workers (the ratio is the figure), and the in-process
cost of computing the slots of 10 facilitators over 60 days. Uses its own PostgreSQL database
(``BENCH_DATABASE_URL``, default ``retreat_bench_consults`` on 127.0.0.1), recreated each run.
Rate limiting is switched off for the run (it would measure the limiter, not the app).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/retreat_bench_consults"
ZONES = ["America/Denver", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London",
         "Australia/Adelaide", "Asia/Kolkata", "America/Chicago", "Pacific/Auckland", "America/Denver"]
BENCH_SECRET = "bench-secret-key-that-is-long-enough-0123456789"
BENCH_FIELD_KEY = "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E="


def wsgi_app():
    """What gunicorn serves: the app, plus a bare Flask app under /__bare for the baseline."""
    from flask import Flask, jsonify
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from retreat import create_app

    bare = Flask("bare")

    @bare.get("/")
    def ping():
        return jsonify(ok=True)

    return DispatcherMiddleware(create_app(), {"/__bare": bare})


def _env(db_url: str, instance: str, base_url: str) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=db_url, SECRET_KEY=BENCH_SECRET, CLINICAL_DATA_KEYS=BENCH_FIELD_KEY,
               RETREAT_INSTANCE_DIR=instance, RATELIMIT_ENABLED="0", SCHEDULER_IN_PROCESS="0", BASE_URL=base_url,
               RETREAT_ENV="development", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database(db_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
    engine.dispose()


def seed(app, facilitators: int = 10) -> list[int]:
    from retreat.consults import publishing
    from retreat.extensions import db
    from retreat.models import Role, User

    ids = []
    with app.app_context():
        db.create_all()
        for i in range(facilitators):
            tz = ZONES[i % len(ZONES)]
            fac = User(email=f"bench-fac{i}@example.com", name=f"Facilitator {i}", role=Role.FACILITATOR.value, tz=tz)
            db.session.add(fac)
            db.session.flush()
            publishing.update_settings(fac, tz=tz, duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
                                min_notice_minutes=60, horizon_days=60, daily_cap=None, slot_interval_minutes=30,
                                change_cutoff_hours=24, video_link="https://video.example.com/bench",
                                accepting_bookings=True)
            publishing.set_weekly_rules(fac, {d: "09:00-12:00, 13:00-17:00" for d in range(5)})
            ids.append(fac.id)
        db.session.commit()
    return ids


def slot_cost(app, repeats: int = 7) -> tuple[float, int]:
    """Median milliseconds to compute every free slot of all facilitators over the next 60 days."""
    from retreat.consults import slots as free_times
    from retreat.extensions import db
    from retreat.timeutil import now_utc

    with app.app_context():
        times, count = [], 0
        for _ in range(repeats):
            now = now_utc()
            t0 = time.perf_counter()
            count = len(free_times.free_slots(now, now + timedelta(days=60), now))
            times.append((time.perf_counter() - t0) * 1000)
            db.session.rollback()
        return statistics.median(times), count


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t0
    finally:
        conn.close()


def drive(port: int, jobs: list[tuple[str, str, dict | None]], threads: int) -> dict:
    """Run ``jobs`` from ``threads`` threads; return throughput, latency and status counts."""
    lock = threading.Lock()
    queue = list(reversed(jobs))
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                method, path, body = queue.pop()
            try:
                status, took = _request(port, method, path, body)
            except OSError:
                status, took = 0, 0.0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(took)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"n": len(jobs), "rps": len(jobs) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000, "statuses": statuses}


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited early with code {proc.returncode}")
        try:
            if _request(port, "GET", "/__bare/")[0] == 200 and _request(port, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not become ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consults", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="requests for the slots and bare endpoints")
    parser.add_argument("--bookings", type=int, default=200, help="booking requests (each for a free time)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args(argv)

    instance = tempfile.mkdtemp(prefix="retreat-bench-consults-")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    os.environ.update({k: v for k, v in _env(args.database_url, instance, base_url).items()
                       if k in ("DATABASE_URL", "SECRET_KEY", "CLINICAL_DATA_KEYS", "RETREAT_INSTANCE_DIR",
                                "RATELIMIT_ENABLED", "BASE_URL")})
    sys.path.insert(0, str(ROOT))
    from retreat import create_app
    from retreat.consults import slots as free_times
    from retreat.extensions import db
    from retreat.timeutil import now_utc

    print(f"Preparing {args.database_url.rsplit('/', 1)[-1]} ...", flush=True)
    prepare_database(args.database_url)
    app = create_app()
    fac_ids = seed(app)
    cost_ms, n_slots = slot_cost(app)
    with app.app_context():
        now = now_utc()
        free = free_times.free_slots(now + timedelta(days=2), now + timedelta(days=60), now)
        db.session.rollback()
    # Distinct, non-adjacent times so that bookings do not collide with each other's buffers.
    by_fac: dict[int, list] = {}
    for s in free:
        last = by_fac.get(s.facilitator_id, [])
        if not last or s.start - last[-1].start >= timedelta(minutes=60):
            by_fac.setdefault(s.facilitator_id, []).append(s)
    candidates = [s for slots in by_fac.values() for s in slots]
    random.Random(7).shuffle(candidates)
    bookings = candidates[:args.bookings]

    cmd = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", "--timeout", "60", "bench.consults:wsgi_app()"]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=_env(args.database_url, instance, base_url),
                            start_new_session=True)
    try:
        _wait_ready(port, proc)
        today = now_utc().date()
        slots_path = (f"/api/v1/consultations/slots?start={today.isoformat()}"
                      f"&end={(today + timedelta(days=6)).isoformat()}&tz=America/Denver")
        warm = [("GET", "/__bare/", None), ("GET", slots_path, None)] * 20
        drive(port, warm, args.threads)
        bare = drive(port, [("GET", "/__bare/", None)] * args.requests, args.threads)
        slots = drive(port, [("GET", slots_path, None)] * args.requests, args.threads)
        book_jobs = [("POST", "/api/v1/consultations",
                      {"start": s.start.isoformat(), "facilitator_id": s.facilitator_id, "name": f"Bench Guest {i}",
                       "email": f"bench-guest{i}@example.com", "timezone": "Europe/Berlin",
                       "answers": {"pregnancy": "no"}}) for i, s in enumerate(bookings)]
        book = drive(port, book_jobs, args.threads)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    print()
    print(f"gunicorn {args.workers} sync workers on PostgreSQL, {args.threads} client threads, "
          f"{len(fac_ids)} facilitators (Mon-Fri 09:00-12:00, 13:00-17:00 in {len(set(ZONES))} zones)")
    print(f"{'endpoint':<44}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'vs bare':>9}  statuses")
    for label, r in (("bare Flask endpoint (GET /__bare/)", bare),
                     ("GET /api/v1/consultations/slots (7 days)", slots),
                     ("POST /api/v1/consultations (book)", book)):
        print(f"{label:<44}{r['n']:>9}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p95']:>9.1f}"
              f"{r['rps'] / bare['rps']:>9.3f}  {dict(sorted(r['statuses'].items()))}")
    print()
    print(f"slots computation in-process, 10 facilitators x 60 days: {cost_ms:.1f} ms (median of 7), "
          f"{n_slots} free slots")
    ok = book["statuses"].get(201, 0)
    if book["statuses"].get(500) or slots["statuses"].get(500):
        print("FAILED: server errors during the run")
        return 1
    print(f"bookings: {ok} created, {book['statuses'].get(409, 0)} refused as taken")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
