"""Load: gunicorn (4 workers) on PostgreSQL, seeded at scale, each scenario against a bare Flask endpoint.

    python -m bench load [--scale small|full] [--clients 16] [--duration S] [--only a,b] [--fresh]
    python -m bench compare A.json B.json

Prepares its own database (``BENCH_LOAD_DATABASE_URL``, default ``retreat_bench_load`` on
127.0.0.1: migrated with Alembic, then ``flask seed-scale``; reused when it already holds the same
figures), starts gunicorn on a free loopback port with ``BENCH_BARE_ENDPOINT=1`` (a bare Flask app
at ``/__bench/bare`` in the same processes) and drives each scenario for a few seconds with
concurrent keep-alive clients (aiohttp). Malformed bodies are mixed into the booking scenario and
the seat rush: they must get a 4xx and must not disturb the others. After the rush the database is
checked for oversold seats, after the bookings for overlapping consults.

Prints one table (requests/s, p50/p95/p99 latency, 5xx and unexpected statuses, the ratio to the
bare endpoint, the target and whether it is met) and writes it as JSON to ``bench/results/``.
Rate limiting is off for the run (it would measure the limiter).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/retreat_bench_load"
SECRET = "bench-load-secret-key-that-is-long-enough-0123456789"
FIELD_KEY = "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E="
USER_AGENT = "retreat-bench/1"
SCALES = {
    "small": dict(cohorts=20, participants=2000, ledger=10000, outbox=20000, duration=5.0),
    "full": dict(cohorts=200, participants=20000, ledger=100000, outbox=200000, duration=10.0),
}
TARGETS = {"read": 0.25, "booking": 0.10}
P99_MS = 250.0
FOUR_XX = frozenset(range(400, 500))


@dataclass
class Req:
    method: str
    path: str
    expect: frozenset
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    malformed: bool = False


@dataclass
class Result:
    name: str
    kind: str
    clients: int
    latencies: list = field(default_factory=list)
    statuses: dict = field(default_factory=dict)
    server_errors: int = 0
    unexpected: int = 0
    malformed: int = 0
    elapsed: float = 0.0
    notes: list = field(default_factory=list)
    oversold: int | None = None

    def summary(self, bare_rps: float | None) -> dict:
        lat = sorted(self.latencies)

        def pct(q):
            return lat[max(0, min(len(lat) - 1, math.ceil(q * len(lat)) - 1))] * 1000 if lat else 0.0

        rps = len(lat) / self.elapsed if self.elapsed else 0.0
        ratio = rps / bare_rps if bare_rps and self.kind != "bare" else None
        out = dict(scenario=self.name, kind=self.kind, clients=self.clients, requests=len(lat),
                   rps=round(rps, 1), p50_ms=round(pct(0.50), 1), p95_ms=round(pct(0.95), 1),
                   p99_ms=round(pct(0.99), 1), server_errors=self.server_errors, unexpected=self.unexpected,
                   malformed=self.malformed, statuses={str(k): v for k, v in sorted(self.statuses.items())},
                   ratio=round(ratio, 3) if ratio is not None else None, oversold=self.oversold,
                   notes=self.notes)
        out["target"], out["passed"] = judge(out)
        return out


def judge(r: dict) -> tuple[str, bool | None]:
    clean = r["server_errors"] == 0 and r["unexpected"] == 0
    if r["kind"] == "bare":
        return "baseline", None
    if r["kind"] in TARGETS:
        ok = clean and (r["ratio"] or 0) >= TARGETS[r["kind"]] and r["p99_ms"] < P99_MS
        return f">={TARGETS[r['kind']]:.2f}x, p99<{P99_MS:.0f}", ok
    if r["kind"] == "rush":
        return "0 oversold, 0 5xx", clean and r["oversold"] == 0
    return "0 5xx (argon2id)", clean


# --------------------------------------------------------------------------------------------
# Server and data
# --------------------------------------------------------------------------------------------


def _env(db_url: str, instance: str, base_url: str) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=db_url, SECRET_KEY=SECRET, CLINICAL_DATA_KEYS=FIELD_KEY, RETREAT_INSTANCE_DIR=instance,
               RATELIMIT_ENABLED="0", SCHEDULER_IN_PROCESS="0", BASE_URL=base_url, RETREAT_ENV="development",
               BENCH_BARE_ENDPOINT="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=str(ROOT), env=env,
                          capture_output=True, text=True)


def prepare_database(db_url: str, env: dict, spec: dict, fresh: bool) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def recreate():
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{url.database}"'))
        engine = create_engine(url)
        with engine.begin() as c:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        engine.dispose()
        done = _flask(env, "db", "upgrade")
        if done.returncode:
            raise SystemExit(f"migrations failed:\n{done.stderr[-2000:]}")

    with admin.connect() as c:
        exists = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).scalar()
    if fresh or not exists:
        recreate()
    args = ["seed-scale", "--cohorts", str(spec["cohorts"]), "--participants", str(spec["participants"]),
            "--ledger", str(spec["ledger"]), "--outbox", str(spec["outbox"])]
    t0 = time.perf_counter()
    done = _flask(env, *args)
    if done.returncode and "Recreate the database" in (done.stderr + done.stdout):
        recreate()
        t0 = time.perf_counter()
        done = _flask(env, *args)
    if done.returncode:
        raise SystemExit(f"seed-scale failed:\n{done.stdout[-1000:]}\n{done.stderr[-2000:]}")
    print(f"  seed-scale: {done.stdout.strip().splitlines()[-2]} ({time.perf_counter() - t0:.1f} s wall)",
          flush=True)
    admin.dispose()


class Fixtures:
    """What the scenarios need, read from the seeded database by an in-process app."""

    def __init__(self, app, rush_seats: int, rush_clients: int):
        from sqlalchemy import select, text

        from retreat.cli import scale_seed
        from retreat.extensions import db
        from retreat.models import Cohort, Enrollment, User
        from retreat.timeutil import now_utc

        self.app = app
        with app.app_context():
            emails = scale_seed.staff_emails()
            ids = dict(db.session.execute(select(User.email, User.id).where(User.email.in_(emails.values()))).all())
            self.facilitator_id = ids[emails["facilitator"]]
            self.finance_id = ids[emails["finance"]]
            self.open_cohorts = list(db.session.scalars(
                select(Cohort.id).where(Cohort.status == "open", Cohort.title.like("Seed cohort %"))
                .order_by(Cohort.starts_at).limit(50)))
            full = db.session.execute(
                select(Cohort.id, Cohort.capacity, Cohort.seats_taken).where(
                    Cohort.status == "open", Cohort.title.like("Seed cohort %"), Cohort.seats_taken == Cohort.capacity)
                .order_by(Cohort.starts_at).limit(1)).first()
            self.full_cohort = full.id
            from sqlalchemy import func
            self.full_cohort_rows = db.session.scalar(select(func.count()).select_from(Enrollment).where(
                Enrollment.cohort_id == full.id))
            # Earlier runs' bookings would use up the free times: forget them (no server runs yet).
            db.session.execute(text("DELETE FROM consultations WHERE guest_email LIKE 'bench-%@example.com'"))
            self.rush_cohort, self.rush_pairs = scale_seed.add_rush_cohort(
                now=now_utc(), seats=rush_seats, applicants=rush_clients)
            db.session.commit()
            self.rush_capacity = rush_seats
            self.login_emails = [scale_seed.participant_email(i) for i in range(200, 1200)]
            self.slots = self._free_slots()

    def _free_slots(self) -> list:
        from retreat.consults import slots as free_times
        from retreat.extensions import db
        from retreat.timeutil import now_utc

        now = now_utc()
        free = free_times.free_slots(now + timedelta(days=2), now + timedelta(days=58), now)
        db.session.rollback()
        by_fac: dict[int, list] = {}
        for s in free:  # non-adjacent times, so that bookings do not collide with each other's buffers
            last = by_fac.get(s.facilitator_id, [])
            if not last or s.start - last[-1].start >= timedelta(minutes=60):
                by_fac.setdefault(s.facilitator_id, []).append(s)
        slots = [s for group in by_fac.values() for s in group]
        random.Random(11).shuffle(slots)
        return slots

    def session(self, user_id: int | None = None) -> tuple[str, str]:
        """A signed session cookie (signed in as ``user_id``, or anonymous) and its CSRF token: what a
        browser holds after signing in, without paying for argon2 in every scenario's setup."""
        from flask import session
        from flask_wtf.csrf import generate_csrf

        from retreat.extensions import db
        from retreat.models import User
        from retreat.web import sessions as web_sessions

        with self.app.test_request_context("/", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                           headers={"User-Agent": USER_AGENT}):
            if user_id is not None:
                web_sessions.sign_in(db.session.get(User, user_id))  # a server session, as a real sign-in
                session.pop("_remember", None)  # Flask-Login's after-request instruction: no response here
            token = generate_csrf()
            value = self.app.session_interface.get_signing_serializer(self.app).dumps(dict(session))
            db.session.commit()
        return f"{self.app.config.get('SESSION_COOKIE_NAME', 'session')}={value}", token


def check_invariants(app, rush_cohort: int) -> dict:
    from sqlalchemy import text

    from retreat.extensions import db

    with app.app_context():
        row = db.session.execute(text(
            "SELECT c.capacity, c.seats_taken, (SELECT count(*) FROM enrollments e WHERE e.cohort_id = c.id "
            "AND e.seat <> 'none') FROM cohorts c WHERE c.id = :c"), {"c": rush_cohort}).one()
        overlaps = db.session.execute(text(
            "SELECT count(*) FROM consultations a JOIN consultations b ON a.facilitator_id = b.facilitator_id "
            "AND a.id < b.id AND a.status = 'booked' AND b.status = 'booked' "
            "AND a.blocked_start < b.blocked_end AND b.blocked_start < a.blocked_end")).scalar()
        db.session.rollback()
    capacity, counter, seated = row
    return dict(capacity=capacity, seats_taken=counter, seated=seated,
                oversold=max(0, seated - capacity) + (1 if counter != seated else 0), consult_overlaps=overlaps)


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


async def _one(http, base: str, req: Req, res: Result) -> None:
    t0 = time.perf_counter()
    try:
        async with http.request(req.method, base + req.path, data=req.body, allow_redirects=False,
                                headers={"User-Agent": USER_AGENT, **req.headers}) as resp:
            await resp.read()
            status = resp.status
    except Exception as exc:  # noqa: BLE001 - a dropped connection is an error, not a crash
        status = 0
        res.notes.append(f"{type(exc).__name__}: {exc}"[:200])
    res.latencies.append(time.perf_counter() - t0)
    res.statuses[status] = res.statuses.get(status, 0) + 1
    if status >= 500 or status == 0:
        res.server_errors += 1
    elif status not in req.expect:
        res.unexpected += 1
        if len(res.notes) < 5:
            res.notes.append(f"{req.method} {req.path[:60]} -> {status}")
    if req.malformed:
        res.malformed += 1


async def drive(base: str, name: str, kind: str, make, clients: int, duration: float, limit: int) -> Result:
    """``clients`` concurrent keep-alive clients take requests from ``make(i)`` (None: no more)
    until ``duration`` seconds or ``limit`` requests."""
    import aiohttp

    res = Result(name, kind, clients)
    counter = itertools.count()
    deadline = time.perf_counter() + duration
    conn = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def client():
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= limit:
                    return
                req = make(i)
                if req is None:
                    return
                await _one(http, base, req, res)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        res.elapsed = time.perf_counter() - t0
    return res


async def burst(base: str, name: str, reqs: list[Req]) -> Result:
    """Every request at once (the seat rush): one client each."""
    import aiohttp

    res = Result(name, "rush", len(reqs))
    conn = aiohttp.TCPConnector(limit=len(reqs), force_close=True)
    async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(_one(http, base, r, res) for r in reqs))
        res.elapsed = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def scenarios(fx: Fixtures, run_id: str) -> dict:
    from retreat.cli import scale_seed
    from retreat.timeutil import now_utc

    today = now_utc().date()
    fac_cookie, _ = fx.session(fx.facilitator_id)
    fin_cookie, _ = fx.session(fx.finance_id)
    slots_path = (f"/api/v1/consultations/slots?start={today.isoformat()}"
                  f"&end={(today + timedelta(days=6)).isoformat()}&tz=America/Denver")
    ok = frozenset({200})

    def bare(i):
        return Req("GET", "/__bench/bare/", ok)

    def cohort_page(i):
        return Req("GET", f"/cohorts/{fx.open_cohorts[i % len(fx.open_cohorts)]}", ok)

    def cohorts_api(i):
        return Req("GET", "/api/v1/cohorts", ok)

    def slots(i):
        return Req("GET", slots_path, ok)

    bad_bookings = [
        (b'{"start": "2026-', JSON), (json.dumps({"name": "No time"}).encode(), JSON),
        (json.dumps({"start": "not a time", "name": "x", "email": "x@example.com", "timezone": "UTC"}).encode(), JSON),
        (json.dumps({"start": "2030-01-01T10:00:00+00:00", "facilitator_id": "abc", "name": "x",
                     "email": "x@example.com", "timezone": "Mars/Olympus"}).encode(), JSON),
        (b"start=2030-01-01", FORM), (json.dumps([1, 2, 3]).encode(), JSON),
    ]
    slot_iter = iter(fx.slots)

    def booking(i):
        if i % 5 == 4:
            body, headers = bad_bookings[(i // 5) % len(bad_bookings)]
            return Req("POST", "/api/v1/consultations", FOUR_XX, headers, body, malformed=True)
        s = next(slot_iter, None)
        if s is None:
            return None
        body = {"start": s.start.isoformat(), "facilitator_id": s.facilitator_id, "name": f"Bench Guest {i}",
                "email": f"bench-{run_id}-{i}@example.com", "timezone": "Europe/Berlin",
                "answers": {"pregnancy": "no"}}
        return Req("POST", "/api/v1/consultations", frozenset({201, 409}), JSON, json.dumps(body).encode())

    def roster(i):
        return Req("GET", f"/facilitator/cohorts/{fx.full_cohort}/roster", ok, {"Cookie": fac_cookie})

    def finance(i):
        return Req("GET", "/finance/reports", ok, {"Cookie": fin_cookie})

    anon = [fx.session(None) for _ in range(64)]

    def login(i):
        cookie, token = anon[i % len(anon)]
        wrong = i % 8 == 7
        body = urlencode({"email": fx.login_emails[i % len(fx.login_emails)], "csrf_token": token,
                          "password": "not-the-password" if wrong else scale_seed.SEED_PASSWORD}).encode()
        return Req("POST", "/account/login", frozenset({422}) if wrong else frozenset({302}),
                   {"Cookie": cookie, **FORM}, body)

    return {"bare": ("bare", bare), "cohort_page": ("read", cohort_page), "cohorts_api": ("read", cohorts_api),
            "consult_slots": ("read", slots), "consult_booking": ("booking", booking), "roster": ("read", roster),
            "finance_reports": ("read", finance), "login": ("login", login)}


def rush_requests(fx: Fixtures) -> list[Req]:
    """One hold per applicant, at once, plus malformed and foreign requests interleaved."""
    reqs, sessions = [], []
    for uid, eid in fx.rush_pairs:
        cookie, token = fx.session(uid)
        sessions.append((cookie, token, eid))
        reqs.append(Req("POST", f"/me/enrollments/{eid}/hold", frozenset({302}),
                        {"Cookie": cookie, "X-CSRFToken": token, **FORM}, b""))
    bad = []
    for n, (cookie, token, eid) in enumerate(sessions[:50]):
        other = sessions[(n + 1) % len(sessions)][2]
        bad += [
            Req("POST", f"/me/enrollments/{eid}/hold", FOUR_XX, {"Cookie": cookie, **FORM}, b"", True),  # no CSRF
            Req("POST", f"/me/enrollments/{other}/hold", FOUR_XX,  # someone else's seat
                {"Cookie": cookie, "X-CSRFToken": token, **FORM}, b"", True),
            Req("POST", f"/api/v1/cohorts/{fx.rush_cohort}/applications", FOUR_XX,
                {"Cookie": cookie, "X-CSRFToken": token, **JSON}, b'{"motivation": ', True),
        ][n % 3:n % 3 + 1]
    bad.append(Req("POST", "/me/enrollments/2147483600/hold", FOUR_XX,
                   {"Cookie": sessions[0][0], "X-CSRFToken": sessions[0][1], **FORM}, b"", True))
    out = []
    step = max(1, len(reqs) // max(1, len(bad)))
    for n, r in enumerate(reqs):
        out.append(r)
        if n % step == step - 1 and bad:
            out.append(bad.pop())
    return out + bad


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def print_results(rows: list[dict], header: str) -> None:
    from bench import print_table

    print()
    print(header)
    table = []
    for r in rows:
        table.append([r["scenario"], r["clients"], r["requests"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}",
                      f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}", r["server_errors"], r["unexpected"],
                      "-" if r["ratio"] is None else f"{r['ratio']:.3f}", r["target"],
                      {True: "pass", False: "FAIL", None: "-"}[r["passed"]]])
    print_table(["scenario", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx", "unexpected",
                 "vs bare", "target", "result"], table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, help="seconds per scenario (small: 5, full: 10)")
    parser.add_argument("--max-requests", type=int, default=20000, help="per scenario")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rush-clients", type=int, default=200)
    parser.add_argument("--rush-seats", type=int, default=12)
    parser.add_argument("--only", help="comma-separated scenarios (bare always runs)")
    parser.add_argument("--fresh", action="store_true", help="recreate and reseed the database")
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. before / after)")
    parser.add_argument("--app-root", help="serve the app of another checkout (e.g. `git archive` of an older "
                                           "commit, for a before/after in one session); data and client stay ours")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_LOAD_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args(argv)
    spec = SCALES[args.scale]
    duration = args.duration or spec["duration"]

    instance = tempfile.mkdtemp(prefix="retreat-bench-load-")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(args.database_url, instance, base)
    for k in ("DATABASE_URL", "SECRET_KEY", "CLINICAL_DATA_KEYS", "RETREAT_INSTANCE_DIR", "RATELIMIT_ENABLED",
              "BASE_URL", "RETREAT_ENV", "SCHEDULER_IN_PROCESS"):
        os.environ[k] = env[k]
    sys.path.insert(0, str(ROOT))

    print(f"Preparing {args.database_url.rsplit('/', 1)[-1]} at {args.scale} scale ...", flush=True)
    prepare_database(args.database_url, env, spec, args.fresh)
    from retreat import create_app

    app = create_app()
    fx = Fixtures(app, args.rush_seats, args.rush_clients)
    run_id = time.strftime("%H%M%S")
    table = scenarios(fx, run_id)
    wanted = set(args.only.split(",")) if args.only else set(table) | {"seat_rush"}
    unknown = wanted - set(table) - {"seat_rush"}
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2

    app_root, target, served_env = ROOT, "wsgi:app", env
    if args.app_root:
        app_root = Path(args.app_root).resolve()
        wrapper = Path(instance) / "bench_served_wsgi.py"
        wrapper.write_text(SERVED_WRAPPER)
        served_env = dict(env, PYTHONPATH=f"{instance}{os.pathsep}{app_root}")
        served_env.pop("BENCH_BARE_ENDPOINT")
        target = "bench_served_wsgi:app"
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", "--timeout", "60", "--backlog", "2048", target]
    proc = subprocess.Popen(cmd, cwd=str(app_root), env=served_env, start_new_session=True)
    results: list[Result] = []
    try:
        _wait_ready(base, proc)
        asyncio.run(_warm(base, table))
        for name, (kind, make) in table.items():
            if name != "bare" and name not in wanted:
                continue
            res = asyncio.run(drive(base, name, kind, make, args.clients, duration, args.max_requests))
            results.append(res)
            print(f"  {name}: {len(res.latencies)} requests in {res.elapsed:.1f} s", flush=True)
        if "seat_rush" in wanted:
            res = asyncio.run(burst(base, "seat_rush", rush_requests(fx)))
            inv = check_invariants(app, fx.rush_cohort)
            res.oversold = inv["oversold"]
            res.notes.append(f"capacity {inv['capacity']}, seated {inv['seated']}, counter {inv['seats_taken']}")
            results.append(res)
            print(f"  seat_rush: {len(res.latencies)} requests at once; {res.notes[-1]}", flush=True)
        overlaps = check_invariants(app, fx.rush_cohort)["consult_overlaps"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    bare_rps = next(len(r.latencies) / r.elapsed for r in results if r.name == "bare")
    rows = [r.summary(bare_rps) for r in results]
    header = ((f"app from {app_root}; " if args.app_root else "") + f"gunicorn {args.workers} sync workers on PostgreSQL, {args.clients} clients ({args.rush_clients} in the "
              f"rush for {args.rush_seats} seats), {args.scale} scale: {spec['cohorts']} cohorts, "
              f"{spec['participants']} participants, {spec['ledger']} ledger entries, {spec['outbox']} outbox "
              f"messages; roster cohort has {fx.full_cohort_rows} enrollments")
    print_results(rows, header)
    failed = [r["scenario"] for r in rows if r["passed"] is False]
    print(f"\nconsult overlaps after booking: {overlaps}; malformed requests: "
          f"{sum(r['malformed'] for r in rows)} (all expected 4xx)")
    from bench import write_results

    path = write_results("load", dict(label=args.label, app_root=str(app_root), scale=args.scale, spec=spec, clients=args.clients,
                                      workers=args.workers, duration=duration, when=time.strftime("%Y-%m-%d %H:%M:%S"),
                                      bare_rps=round(bare_rps, 1), consult_overlaps=overlaps, scenarios=rows))
    few = [r["scenario"] for r in rows if r["requests"] < 50]
    if few:
        print(f"too few requests for a figure in: {', '.join(few)} (raise --duration, or reseed with --fresh)")
    print(f"targets missed: {', '.join(failed) if failed else 'none'}; results: {path.relative_to(ROOT)}")
    correctness = overlaps == 0 and all(r["server_errors"] == 0 and r["unexpected"] == 0 and not r["oversold"]
                                        for r in rows)
    return 0 if correctness else 1


SERVED_WRAPPER = '''"""Another checkout's app, with the bare baseline endpoint mounted beside it (bench only)."""
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from retreat import create_app

bare = Flask("bench_bare")
bare.add_url_rule("/", "bare", lambda: {"ok": True})
app = DispatcherMiddleware(create_app(), {"/__bench/bare": bare})
'''


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/__bench/bare/", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not become ready")


async def _warm(base: str, table: dict) -> None:
    """A few requests of each kind so that every worker has compiled its templates and opened connections."""
    for name, (kind, make) in table.items():
        if name in ("consult_booking", "login"):
            continue
        await drive(base, f"warm-{name}", kind, make, 4, 5.0, 12)


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def compare(argv: list[str]) -> int:
    """``python -m bench compare A.json B.json``: the change from run A to run B, per scenario."""
    from bench import print_table

    if len(argv) != 2:
        print("usage: python -m bench compare A.json B.json", file=sys.stderr)
        return 2
    a, b = (json.loads(Path(p).read_text()) for p in argv)
    rows_a = {r["scenario"]: r for r in a["scenarios"]}
    rows_b = {r["scenario"]: r for r in b["scenarios"]}

    def change(x, y):
        return f"{(y - x) / x * 100:+.0f}%" if x else "-"

    table = []
    for name in [n for n in rows_a if n in rows_b] + [n for n in rows_b if n not in rows_a]:
        ra, rb = rows_a.get(name), rows_b[name]
        if ra is None:
            table.append([name, "-", f"{rb['rps']:.0f}", "-", "-", f"{rb['p99_ms']:.0f}", "-", "-",
                          rb["ratio"] or "-", "-", "new"])
            continue
        table.append([name, f"{ra['rps']:.0f}", f"{rb['rps']:.0f}", change(ra["rps"], rb["rps"]),
                      f"{ra['p99_ms']:.0f}", f"{rb['p99_ms']:.0f}", change(ra["p99_ms"], rb["p99_ms"]),
                      ra["ratio"] if ra["ratio"] is not None else "-", rb["ratio"] if rb["ratio"] is not None else "-",
                      {True: "pass", False: "FAIL", None: "-"}[ra["passed"]],
                      {True: "pass", False: "FAIL", None: "-"}[rb["passed"]]])
    print(f"A: {argv[0]} ({a.get('label') or a.get('when')}, {a.get('scale')})")
    print(f"B: {argv[1]} ({b.get('label') or b.get('when')}, {b.get('scale')})")
    print_table(["scenario", "req/s A", "req/s B", "change", "p99 A", "p99 B", "change", "ratio A", "ratio B",
                 "A", "B"], table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
