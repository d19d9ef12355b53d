"""Fault scenarios: break something real, then count what was sent, applied, lost and duplicated.

    python -m bench faults [kill-dispatcher] [pg-restart] [webhook-storm] [smtp-down] [options]

Every scenario runs real processes on loopback only, bounded in count and time, and exits
non-zero when anything was lost (or, for pg-restart, when a request got a 500 or hung).

* kill-dispatcher: N due outbox messages; the real scheduler (`flask scheduler run`) sends them to
  an aiosmtpd server and is SIGKILLed mid-batch; a second scheduler finishes. Counted per
  Message-ID (one per dedupe key). Delivery is at-least-once: a message the SMTP server accepted
  just before the kill, but not yet marked sent, goes out again (same Message-ID) when its lease
  runs out. The lease is compressed to --lease seconds (production: OUTBOX_LEASE_SECONDS or
  batch size x SMTP_TIMEOUT + 60 s, at least 5 minutes).
* pg-restart: gunicorn (gunicorn.conf.py) against a throwaway PostgreSQL cluster created here
  with initdb on a free port (never the shared server); clients send requests continuously while
  that cluster is stopped for --down seconds and started again. Expect 503s (never 500s, never a
  hang beyond --timeout) and recovery without restarting gunicorn; a webhook answered 200 must be
  in the database.
* webhook-storm: against localstripe, two identical sets of enrollments with deposits, a failed
  attempt, a balance and a refund; set A's signed events are posted once in order, set B's are
  copied --copies times, shuffled and posted concurrently to /webhooks/stripe of gunicorn. The
  ledger, payments, refunds and statuses of each B enrollment must equal its A twin.
* smtp-down: N due messages while the SMTP server is down for --outage "minutes"; the scheduler
  keeps retrying with exponential backoff; the server comes back; every message goes out once.
  Time is compressed: OUTBOX_BACKOFF_BASE_SECONDS=1 makes the production backoff (1, 2, 4, 8 ...
  minutes) run in seconds, so "10 minutes down" takes 10 s and the attempts are the same.

PostgreSQL for the scratch databases: FAULTS_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/retreat_faults); each scenario creates
``<name>_<scenario>`` and drops it afterwards (--keep to keep it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import print_table, write_results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/retreat_faults"
SECRET = "bench-faults-secret-key-0123456789-abcdefghijklmnop"
CLINICAL_KEY = "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E="
_TMP = Path(tempfile.mkdtemp(prefix="retreat-faults-"))


# --------------------------------------------------------------------------------------------
# Plumbing: ports, databases, app, child processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def scratch_db(scenario: str, keep: bool = False, base_url: str | None = None):
    """A fresh PostgreSQL database with the app's tables; dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    base = make_url(base_url or os.environ.get("FAULTS_DATABASE_URL", DEFAULT_PG))
    name = f"{base.database}_{scenario.replace('-', '_')}"
    url = base.set(database=name).render_as_string(hide_password=False)
    admin = _admin_engine(url)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    app = make_app(url)
    with app.app_context():
        from retreat.extensions import db

        with db.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        db.create_all()
        db.engine.dispose()
    try:
        yield url
    finally:
        if not keep:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_app(url: str, **extra):
    from retreat import create_app

    cfg = {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "SECRET_KEY_GENERATED": False,
           "BASE_URL": "http://127.0.0.1:5000", "ENV_NAME": "bench", "CLINICAL_DATA_KEYS": CLINICAL_KEY,
           "INSTANCE_DIR": str(_TMP / "instance"), "RATELIMIT_ENABLED": False}
    cfg.update(extra)
    return create_app(cfg)


def child_env(url: str, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url, "SECRET_KEY": SECRET, "CLINICAL_DATA_KEYS": CLINICAL_KEY,
        "RETREAT_INSTANCE_DIR": str(_TMP / "instance"), "RETREAT_ENV": "bench", "SCHEDULER_IN_PROCESS": "0",
        "RATELIMIT_ENABLED": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def spawn(args: list[str], env: dict, log_name: str) -> subprocess.Popen:
    log = open(_TMP / log_name, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def scheduler(url: str, log_name: str, **extra) -> subprocess.Popen:
    return spawn([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
                 child_env(url, DISPATCH_INTERVAL_SECONDS=1, **extra), log_name)


def stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def gunicorn(url: str, workers: int = 2, **extra):
    port = free_port()
    proc = spawn([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
                 child_env(url, WEB_CONCURRENCY=workers, BIND=f"127.0.0.1:{port}", **extra), "gunicorn.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            code, _ = http_call(port, "GET", "/healthz", timeout=2)
            if code == 200:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {_TMP / 'gunicorn.log'}")
            time.sleep(0.2)
        yield port
    finally:
        stop(proc, timeout=30)


def http_call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
              timeout: float = 10) -> tuple[int | str, bytes]:
    """One request on its own connection: (status, body), or ("timeout" | "error:<kind>", b"")."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except TimeoutError:
        return "timeout", b""
    except (OSError, http.client.HTTPException) as exc:
        return f"error:{type(exc).__name__}", b""
    finally:
        conn.close()


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------------------------
# Outbox helpers
# --------------------------------------------------------------------------------------------


class RecordingSmtp:
    """A real SMTP server (aiosmtpd) counting deliveries per Message-ID; can go down and come back."""

    def __init__(self, delay: float = 0.0):
        self.port = free_port()
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.total = 0
        self._lock = threading.Lock()
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        mid = ""
        for line in envelope.content[:4000].split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode()
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.counts[mid] += 1
            self.total += 1
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def enqueue_due(url: str, n: int) -> None:
    from bench.dispatch import reset_and_enqueue

    reset_and_enqueue(make_app(url), n, datetime.now(UTC) - timedelta(seconds=1))


def outbox_state(url: str) -> tuple[Counter, list[tuple[int, str, str, int, str | None]]]:
    """(status counts, rows as (id, dedupe_key, status, attempts, leased_by))."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(text(
            "SELECT id, dedupe_key, status, attempts, leased_by FROM outbox_messages ORDER BY id"))]
    engine.dispose()
    return Counter(r[2] for r in rows), rows


def delivery_report(rows, sink: RecordingSmtp) -> dict:
    from retreat.messaging.transport import mail_domain, message_id

    domain = mail_domain(os.environ.get("MAIL_FROM") or "Open Meadow Retreats <hello@retreat.localhost>")
    expected = {message_id(r[0], r[1], domain): r[1] for r in rows}
    per_key = Counter({key: sink.counts.get(mid, 0) for mid, key in expected.items()})
    lost = sorted(k for k, c in per_key.items() if c == 0)
    dup_keys = {k: c for k, c in per_key.items() if c > 1}
    delivered = sum(1 for c in per_key.values() if c)
    return {"sent": len(expected), "delivered": delivered, "applied": delivered,
            "lost": len(lost), "duplicated": sum(c - 1 for c in dup_keys.values()),
            "duplicate_keys": sorted(dup_keys)[:20], "lost_keys": lost[:20],
            "unexpected": sum(c for mid, c in sink.counts.items() if mid not in expected)}


# --------------------------------------------------------------------------------------------
# a. dispatcher killed with SIGKILL during a batch
# --------------------------------------------------------------------------------------------


def kill_dispatcher(args) -> dict:
    n = args.n
    with scratch_db("kill", args.keep) as url:
        enqueue_due(url, n)
        sink = RecordingSmtp(delay=args.smtp_delay)
        sink.start()
        extra = dict(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SMTP_STARTTLS=0, SMTP_TIMEOUT=5,
                     OUTBOX_LEASE_SECONDS=args.lease, OUTBOX_BATCH_SIZE=args.batch_size)
        first = scheduler(url, "scheduler-1.log", **extra)
        second = None
        try:
            # Mid-batch: half a batch past the share asked for (batches start at multiples of the size).
            kill_after = max(1, min(n - 1, int(n * args.kill_at) // args.batch_size * args.batch_size
                                    + args.batch_size // 2))
            if not wait_until(lambda: sink.total >= kill_after or first.poll() is not None, 180, 0.005):
                raise RuntimeError("the first dispatcher sent too little in 180 s")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed = time.monotonic()
            at_kill = sink.total
            statuses, rows = outbox_state(url)
            orphaned = sum(1 for r in rows if r[2] == "sending" and r[4] and f":{first.pid}:" in r[4])
            print(f"  SIGKILL after {at_kill} deliveries: {dict(statuses)}; {orphaned} rows leased by the dead "
                  f"dispatcher", flush=True)
            second = scheduler(url, "scheduler-2.log", **extra)
            done = wait_until(lambda: outbox_state(url)[0].get("sent", 0) == n, args.lease + 180, 0.2)
            finished = time.monotonic()
            time.sleep(1)  # anything still in flight arrives
        finally:
            stop(second)
            stop(first, signal.SIGKILL)
            sink.stop()
        statuses, rows = outbox_state(url)
    report = delivery_report(rows, sink)
    report.update(scenario="kill-dispatcher", statuses=dict(statuses), delivered_before_kill=at_kill,
                  orphaned_rows=orphaned, lease_seconds=args.lease, all_sent=done,
                  recovery_seconds=round(finished - killed, 1),
                  ok=done and report["lost"] == 0 and report["unexpected"] == 0)
    report["note"] = (f"at-least-once: {report['duplicated']} resent after the kill (accepted by SMTP, not yet "
                      f"marked); orphaned rows waited for the {args.lease}s lease")
    return report


# --------------------------------------------------------------------------------------------
# d. SMTP server down for a while
# --------------------------------------------------------------------------------------------


def smtp_down(args) -> dict:
    n, outage = args.n_smtp, args.outage
    with scratch_db("smtp", args.keep) as url:
        enqueue_due(url, n)
        sink = RecordingSmtp()  # port chosen, server not started: connections are refused
        extra = dict(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SMTP_STARTTLS=0, SMTP_TIMEOUT=5,
                     OUTBOX_BACKOFF_BASE_SECONDS=args.backoff_base, OUTBOX_LEASE_SECONDS=30)
        proc = scheduler(url, "scheduler-smtp.log", **extra)
        samples = []
        try:
            # The outage is counted from the first failed attempt (not from interpreter start-up).
            if not wait_until(lambda: max((r[3] for r in outbox_state(url)[1]), default=0) >= 1, 60, 0.2):
                raise RuntimeError("the scheduler made no attempt in 60 s")
            started = time.monotonic()
            while time.monotonic() - started < outage:
                statuses, rows = outbox_state(url)
                samples.append((round(time.monotonic() - started, 1), dict(statuses),
                                max((r[3] for r in rows), default=0)))
                time.sleep(1)
            statuses, rows = outbox_state(url)
            attempts_while_down = Counter(r[3] for r in rows)
            sink.start()
            back = time.monotonic()
            settle = outage * 2 * args.backoff_base + 60  # the next retry is at most one backoff step away
            done = wait_until(lambda: outbox_state(url)[0].get("sent", 0) == n, settle, 0.2)
            finished = time.monotonic()
            time.sleep(1)
        finally:
            stop(proc)
            sink.stop()
        statuses, rows = outbox_state(url)
    report = delivery_report(rows, sink)
    report.update(scenario="smtp-down", statuses=dict(statuses), outage_seconds=outage,
                  backoff_base_seconds=args.backoff_base, all_sent=done,
                  attempts_while_down=dict(sorted(attempts_while_down.items())),
                  seconds_to_drain_after_smtp_back=round(finished - back, 1), samples=samples[-3:],
                  ok=done and report["lost"] == 0 and report["duplicated"] == 0)
    unit = "minutes" if args.backoff_base == 60 else f"x{args.backoff_base}s units (1 unit = 1 production minute)"
    report["note"] = (f"SMTP refused connections for {outage} {unit}; attempts per message while down: "
                      f"{report['attempts_while_down']}; drained {report['seconds_to_drain_after_smtp_back']}s "
                      f"after it came back")
    return report


# --------------------------------------------------------------------------------------------
# b. PostgreSQL restarted while requests are in flight
# --------------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return str(found[-1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def throwaway_cluster():
    """A private PostgreSQL cluster on a free port in a temp dir; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="retreat-faults-pg-"))
    data, port = tmp / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    opts = (f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=32MB "
            f"-c max_connections=60")
    ctl = [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(tmp / "server.log"), "-o", opts]

    def pg_ctl(*action: str) -> None:
        subprocess.run(_as_postgres([*ctl, *action]), check=True, capture_output=True, timeout=60)

    pg_ctl("-w", "start")
    try:
        yield port, pg_ctl
    finally:
        with contextlib.suppress(Exception):
            pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def _seed_public_cohort(url: str) -> int:
    from retreat.cohorts.models import Cohort, CohortStatus, DepositTiming, Retreat
    from retreat.extensions import db

    app = make_app(url)
    with app.app_context():
        start = datetime.now(UTC) + timedelta(days=90)
        r = Retreat(slug="fault-retreat", title="Fault Retreat", summary="A week of group work.",
                    description="Long description.", location="Colorado", included="Lodging")
        c = Cohort(retreat=r, title="Autumn cohort", starts_at=start, ends_at=start + timedelta(days=6),
                   timezone="America/Denver", capacity=12, seats_taken=0, currency="USD", price_minor=450000,
                   deposit_minor=50000, status=str(CohortStatus.OPEN),
                   deposit_timing=str(DepositTiming.BEFORE_CLEARANCE), hold_minutes=30, offer_hours=48)
        from retreat.accounts.passwords import hash_password
        from retreat.models import User

        person = User(email="signed-in@example.com", name="Signed In", role="participant", tz="America/Denver",
                      email_verified_at=start, password_hash=hash_password(PASSWORD))
        db.session.add_all([r, c, person])
        db.session.commit()
        cohort_id = c.id
        db.engine.dispose()
    return cohort_id


PASSWORD = "faults-password-2026"


def _session_cookie(set_cookie: str | None) -> str | None:
    if not set_cookie:
        return None
    for part in set_cookie.split(","):
        part = part.strip()
        if part.startswith("session="):
            return part.split(";", 1)[0]
    return None


def login_cookie(port: int, email: str, password: str) -> str:
    """Sign in through the real form (CSRF token included); returns the ``session=...`` cookie."""
    import re
    import urllib.parse

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/account/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = _session_cookie(resp.getheader("Set-Cookie"))
    tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', page)
    token = re.search(r'value="([^"]+)"', tag.group(0)).group(1) if tag else ""
    body = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password})
    conn.request("POST", "/account/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie or ""})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    signed = _session_cookie(resp.getheader("Set-Cookie"))
    if resp.status != 302 or not signed:
        raise RuntimeError(f"could not sign in ({resp.status})")
    return signed


def _percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000)  # noqa: E731
    return f"{pick(0.50)}/{pick(0.99)}" if ordered else "-"


def pg_restart(args) -> dict:
    from sqlalchemy import create_engine, text

    from retreat.payments import gateway

    with throwaway_cluster() as (pg_port, pg_ctl):
        base = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/retreat"
        with scratch_db("restart", keep=True, base_url=base) as url:
            cohort_id = _seed_public_cohort(url)
            webhook_secret = make_app(url).config["STRIPE_WEBHOOK_SECRET"]
            # The scheduler dispatches outbox messages to a slow SMTP server across the restart.
            enqueue_due(url, args.restart_messages)
            sink = RecordingSmtp(delay=args.restart_smtp_delay)
            sink.start()
            sched = None
            with gunicorn(url, workers=args.workers, STRIPE_API_BASE="http://127.0.0.1:9") as port:
                cookie = login_cookie(port, "signed-in@example.com", PASSWORD)
                sched = scheduler(url, "scheduler-restart.log", SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port,
                                  SMTP_STARTTLS=0, SMTP_TIMEOUT=5, OUTBOX_LEASE_SECONDS=5)
                paths = ["/api/v1/cohorts", "/retreats", f"/cohorts/{cohort_id}", "/healthz", "webhook",
                         "signed-in"]
                results, lock, t0 = [], threading.Lock(), time.monotonic()
                stop_at = t0 + args.duration
                seq = iter(range(10**9))

                def client(k: int) -> None:
                    i = 0
                    while time.monotonic() < stop_at:
                        path = paths[(i + k) % len(paths)]
                        i += 1
                        began = time.monotonic()
                        event_id = None
                        if path == "webhook":
                            event_id = f"evt_restart_{next(seq)}"
                            payload = gateway.event_payload(event_id, "customer.updated", {"id": "cus_fault"})
                            code, _ = http_call(port, "POST", "/webhooks/stripe", payload, {
                                "Stripe-Signature": gateway.signature_header(payload, webhook_secret),
                                "Content-Type": "application/json"}, timeout=args.timeout)
                        elif path == "signed-in":  # the participant's portal, session cookie
                            code, _ = http_call(port, "GET", "/me/", headers={"Cookie": cookie},
                                                timeout=args.timeout)
                        else:
                            code, _ = http_call(port, "GET", path, timeout=args.timeout)
                        with lock:
                            results.append((began - t0, time.monotonic() - t0, path, code, event_id))
                        time.sleep(0.01)

                threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
                for t in threads:
                    t.start()
                time.sleep(args.restart_at)
                t_stop = time.monotonic() - t0
                pg_ctl("-m", args.stop_mode, "-w", "stop")
                time.sleep(args.down)
                pg_ctl("-w", "start")
                t_up = time.monotonic() - t0
                for t in threads:
                    t.join(args.duration + args.timeout + 30)
            n_msg = args.restart_messages
            try:
                all_sent = wait_until(lambda: outbox_state(url)[0].get("sent", 0) == n_msg, 60, 0.2)
                time.sleep(1)
            finally:
                stop(sched)
                sink.stop()
            msg_statuses, msg_rows = outbox_state(url)
            mail = delivery_report(msg_rows, sink)
            engine = create_engine(url)
            with engine.connect() as c:
                recorded = {r[0] for r in c.execute(text("SELECT event_id FROM stripe_events"))}
            engine.dispose()
    codes = Counter(str(r[3]) for r in results)
    by_path = {p: dict(Counter(str(r[3]) for r in results if r[2] == p)) for p in {r[2] for r in results}}
    after_up = sorted((r for r in results if r[0] >= t_up), key=lambda r: r[0])
    first_ok = next((r for r in after_up if r[3] == 200), None)
    last_bad = max((r[1] for r in results if r[3] != 200), default=None)
    acked = [r[4] for r in results if r[4] and r[3] == 200]
    lost_webhooks = [e for e in acked if e not in recorded]
    hung = [r for r in results if r[3] == "timeout"]
    report = {
        "scenario": "pg-restart", "requests": len(results), "codes": dict(codes), "codes_by_path": by_path,
        "http_500": sum(1 for r in results if isinstance(r[3], int) and r[3] >= 500 and r[3] != 503),
        "http_503": codes.get("503", 0), "timeouts": len(hung),
        "connection_errors": sum(v for k, v in codes.items() if k.startswith("error")),
        "max_latency_ms": round(max((r[1] - r[0]) for r in results) * 1000),
        "p50_p99_latency_ms": _percentiles([r[1] - r[0] for r in results]),
        "slowest": [(r[2], round(r[0], 2), round((r[1] - r[0]) * 1000), r[3])
                    for r in sorted(results, key=lambda r: r[0] - r[1])[:5]],
        "stopped_at_s": round(t_stop, 1), "down_s": args.down, "started_at_s": round(t_up, 1),
        "recovery_s": round(first_ok[0] - t_up, 2) if first_ok else None,
        "last_failure_after_up_s": round(last_bad - t_up, 2) if last_bad and last_bad > t_up else 0,
        "webhooks_acknowledged": len(acked), "webhooks_lost": len(lost_webhooks),
        "sent": len(results), "applied": codes.get("200", 0), "lost": len(lost_webhooks), "duplicated": 0,
        "outbox": {"messages": n_msg, "statuses": dict(msg_statuses), "delivered": mail["delivered"],
                   "lost": mail["lost"], "duplicated": mail["duplicated"], "all_sent": all_sent},
    }
    report["lost"] += mail["lost"]
    report["duplicated"] = mail["duplicated"]
    report["ok"] = (report["http_500"] == 0 and not hung and report["connection_errors"] == 0
                    and first_ok is not None and not lost_webhooks and all_sent and mail["lost"] == 0)
    report["note"] = (f"PostgreSQL down {args.down}s ({args.stop_mode} stop): {report['http_503']} x 503, {report['http_500']} x 500, "
                      f"{len(hung)} hung; first 200 {report['recovery_s']}s after it was back; "
                      f"max latency {report['max_latency_ms']} ms; outbox dispatched across the restart: "
                      f"{mail['delivered']}/{n_msg} delivered, {mail['duplicated']} duplicated")
    return report


# --------------------------------------------------------------------------------------------
# c. webhook storm
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def localstripe_server():
    binary = Path(sys.executable).with_name("localstripe")
    port = free_port()
    proc = spawn([str(binary if binary.exists() else shutil.which("localstripe")), "--port", str(port),
                  "--from-scratch"], dict(os.environ), "localstripe.log")
    try:
        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
            return False

        if not wait_until(listening, 20, 0.1):
            raise RuntimeError(f"localstripe did not start; see {_TMP / 'localstripe.log'}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _storm_set(label: str, k: int, secret: str) -> tuple[list[int], list[tuple[bytes, str]]]:
    """k enrollments paid like tests/unit/test_webhook_replay.py; returns their ids and signed events."""
    from retreat.cohorts import enrollment
    from retreat.cohorts.models import Cohort, CohortStatus, DepositTiming, Retreat
    from retreat.extensions import db
    from retreat.models import User
    from retreat.payments import checkout as payments
    from retreat.payments import gateway
    from retreat.timeutil import now_utc

    now = now_utc()
    start = now + timedelta(days=120)
    r = Retreat(slug=f"storm-{label}", title=f"Storm {label}", summary="s", description="d",
                location="Colorado", included="Lodging")
    c = Cohort(retreat=r, title=f"Storm cohort {label}", starts_at=start, ends_at=start + timedelta(days=6),
               timezone="America/Denver", capacity=k + 5, seats_taken=0, currency="USD", price_minor=300000,
               deposit_minor=50000, balance_due_on=(now + timedelta(days=90)).date(), status=str(CohortStatus.OPEN),
               deposit_timing=str(DepositTiming.BEFORE_CLEARANCE), hold_minutes=30, offer_hours=48)
    db.session.add_all([r, c])
    db.session.flush()

    def pay(enr, kind, card="4242424242424242"):
        begun = payments.begin(enr, kind, now=now_utc(), actor=enr.participant)
        assert begun.payment is not None, begun.message
        pid = begun.payment.id
        db.session.commit()
        pi = payments.ensure_intent(pid)
        return gateway.confirm_with_payment_method(pi["id"], gateway.create_test_payment_method(card))

    ids, events = [], []
    for i in range(k):
        person = User(email=f"storm-{label}-{i}@example.com", name=f"Storm {label} {i}", role="participant",
                      tz="America/Denver", email_verified_at=now)
        db.session.add(person)
        db.session.flush()
        enr = enrollment.apply(c, person, now=now)
        db.session.commit()
        dep = pay(enr, "deposit")
        payments.sync_payment_intent(dep, now=now_utc())  # the return page saw the deposit
        db.session.commit()
        bad = pay(enr, "balance", card="4000000000000341")
        payments.sync_payment_intent(bad, now=now_utc())  # the return page saw the decline
        db.session.commit()
        bal = pay(enr, "balance")
        refund = gateway.create_refund(payment_intent_id=bal["id"], amount_minor=12345,
                                       idempotency_key=f"storm-{label}-{i}", metadata={})
        ids.append(enr.id)
        for j, (etype, obj) in enumerate([
                ("payment_intent.payment_failed", {"id": bad["id"]}),
                ("payment_intent.succeeded", {"id": bal["id"]}),
                ("refund.created", {"id": refund["id"], "object": "refund"}),
                ("charge.refunded", {"id": bal["latest_charge"], "payment_intent": bal["id"]}),
                ("customer.updated", {"id": f"cus_storm_{label}_{i}"})]):
            payload = gateway.event_payload(f"evt_storm_{label}_{i}_{j}", etype, obj)
            events.append((payload, gateway.signature_header(payload, secret)))
    return ids, events


def _storm_snapshot(enr_id: int) -> dict:
    from sqlalchemy import select

    from retreat.cohorts.models import Enrollment
    from retreat.extensions import db
    from retreat.payments import pricing
    from retreat.payments.models import LedgerEntry, Payment, Refund

    enr = db.session.get(Enrollment, enr_id)
    q = pricing.quote(enr)
    return {
        "ledger": sorted((e.entry_type, e.amount_minor) for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.enrollment_id == enr_id))),
        "payments": sorted((p.kind, p.status, p.amount_minor) for p in db.session.scalars(
            select(Payment).where(Payment.enrollment_id == enr_id))),
        "refunds": sorted((r.kind, r.status, r.amount_minor) for r in db.session.scalars(
            select(Refund).where(Refund.enrollment_id == enr_id))),
        "status": enr.status, "seat": enr.seat, "paid": q.paid, "balance": q.balance,
    }


def webhook_storm(args) -> dict:
    from sqlalchemy import func, select

    k = max(1, args.deliveries // (5 * args.copies))
    with scratch_db("storm", args.keep) as url, localstripe_server() as stripe_base:
        app = make_app(url, STRIPE_API_BASE=stripe_base)
        secret = app.config["STRIPE_WEBHOOK_SECRET"]
        set_up = time.monotonic()
        with app.app_context():
            a_ids, a_events = _storm_set("a", k, secret)
            b_ids, b_events = _storm_set("b", k, secret)
        set_up = time.monotonic() - set_up
        print(f"  set-up: 2 x {k} enrollments paid at localstripe in {set_up:.0f}s", flush=True)
        with gunicorn(url, workers=args.workers, STRIPE_API_BASE=stripe_base) as port:
            def post(event):
                payload, sig = event
                return http_call(port, "POST", "/webhooks/stripe", payload,
                                 {"Stripe-Signature": sig, "Content-Type": "application/json"}, timeout=60)[0]

            in_order = Counter(str(post(e)) for e in a_events)
            deliveries = b_events * args.copies
            random.Random(args.seed).shuffle(deliveries)
            began = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                storm = Counter(str(c) for c in pool.map(post, deliveries))
            storm_s = time.monotonic() - began
        with app.app_context():
            from retreat.extensions import db
            from retreat.payments.models import LedgerEntry, StripeEvent

            a_snap = [_storm_snapshot(i) for i in a_ids]
            b_snap = [_storm_snapshot(i) for i in b_ids]
            recorded = db.session.scalar(select(func.count()).select_from(StripeEvent)
                                         .where(StripeEvent.event_id.like("evt_storm_b_%")))
            ledger_a = db.session.scalar(select(func.count()).select_from(LedgerEntry)
                                         .where(LedgerEntry.enrollment_id.in_(a_ids)))
            ledger_b = db.session.scalar(select(func.count()).select_from(LedgerEntry)
                                         .where(LedgerEntry.enrollment_id.in_(b_ids)))
            db.session.remove()
            db.engine.dispose()
    identical = sum(1 for x, y in zip(a_snap, b_snap, strict=True) if x == y)
    missing = sum(len(set(x["ledger"]) - set(y["ledger"])) for x, y in zip(a_snap, b_snap, strict=True))
    report = {
        "scenario": "webhook-storm", "enrollments_per_set": k, "unique_events": len(b_events),
        "sent": len(deliveries), "codes_storm": dict(storm), "codes_in_order": dict(in_order),
        "events_recorded": recorded, "ledger_entries_in_order": ledger_a, "ledger_entries_storm": ledger_b,
        "identical_enrollments": f"{identical}/{k}", "applied": recorded, "lost": missing, "duplicated": max(0, ledger_b - ledger_a),
        "storm_seconds": round(storm_s, 1), "per_second": round(len(deliveries) / storm_s, 1),
        "concurrency": args.concurrency,
    }
    report["ok"] = (identical == k and recorded == len(b_events) and set(storm) == {"200"}
                    and set(in_order) == {"200"} and ledger_a == ledger_b)
    report["note"] = (f"{len(deliveries)} deliveries ({args.copies} copies of {len(b_events)} events, shuffled, "
                      f"{args.concurrency} at a time) -> {recorded} events recorded, ledger {ledger_b} rows vs "
                      f"{ledger_a} in order, {identical}/{k} enrollments identical")
    return report


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

SCENARIOS = {"kill-dispatcher": kill_dispatcher, "pg-restart": pg_restart, "webhook-storm": webhook_storm,
             "smtp-down": smtp_down}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help=f"scenarios (default all): {', '.join(SCENARIOS)}")
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    g = p.add_argument_group("kill-dispatcher")
    g.add_argument("--n", type=int, default=1000, help="messages (default 1000)")
    g.add_argument("--batch-size", type=int, default=50)
    g.add_argument("--kill-at", type=float, default=0.4, help="SIGKILL after this share was delivered")
    g.add_argument("--lease", type=int, default=5, help="OUTBOX_LEASE_SECONDS, compressed (default 5)")
    g.add_argument("--smtp-delay", type=float, default=0.004, help="SMTP server delay per message, s")
    g = p.add_argument_group("smtp-down")
    g.add_argument("--n-smtp", type=int, default=200, help="messages (default 200)")
    g.add_argument("--outage", type=int, default=10, help="SMTP down for this many backoff units (default 10)")
    g.add_argument("--backoff-base", type=int, default=1,
                   help="OUTBOX_BACKOFF_BASE_SECONDS: 1 compresses minutes into seconds (60 = real time)")
    g = p.add_argument_group("pg-restart")
    g.add_argument("--duration", type=float, default=20, help="seconds of traffic")
    g.add_argument("--restart-at", type=float, default=6)
    g.add_argument("--down", type=float, default=3, help="seconds PostgreSQL stays stopped")
    g.add_argument("--stop-mode", choices=["smart", "fast", "immediate"], default="fast",
                   help="pg_ctl stop mode: fast (a restart) or immediate (a crash, recovery at start)")
    g.add_argument("--clients", type=int, default=4)
    g.add_argument("--timeout", type=float, default=15, help="a request taking longer counts as hung")
    g.add_argument("--workers", type=int, default=2, help="gunicorn workers (pg-restart, webhook-storm)")
    g.add_argument("--restart-messages", type=int, default=300, help="outbox messages dispatched meanwhile")
    g.add_argument("--restart-smtp-delay", type=float, default=0.04, help="SMTP delay per message, s")
    g = p.add_argument_group("webhook-storm")
    g.add_argument("--deliveries", type=int, default=1000)
    g.add_argument("--copies", type=int, default=5, help="each event delivered this many times")
    g.add_argument("--concurrency", type=int, default=16)
    g.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv or [])
    names = args.names or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")

    reports = []
    for name in names:
        print(f"\n== {name}", flush=True)
        began = time.monotonic()
        try:
            report = SCENARIOS[name](args)
        except Exception as exc:  # noqa: BLE001 - a scenario that cannot run is a failure, reported
            report = {"scenario": name, "ok": False, "note": f"could not run: {type(exc).__name__}: {exc}"}
        report["seconds"] = round(time.monotonic() - began, 1)
        reports.append(report)
        print(json.dumps({k: v for k, v in report.items() if k not in ("note",)}, default=str))
        print(f"  {'OK' if report['ok'] else 'FAILED'}: {report.get('note', '')}", flush=True)
    print()
    print_table(["scenario", "sent", "applied", "lost", "duplicated", "result", "notes"],
                [[r["scenario"], r.get("sent", "-"), r.get("applied", "-"), r.get("lost", "-"), r.get("duplicated", "-"),
                  "ok" if r["ok"] else "FAILED", r.get("note", "")] for r in reports])
    path = write_results("faults", {"at": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(),
                                    "load_avg": os.getloadavg(), "scenarios": reports})
    print(f"\nwritten to {path}; logs in {_TMP}")
    return 0 if all(r["ok"] for r in reports) else 1
