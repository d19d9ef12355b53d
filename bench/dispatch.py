"""Outbox dispatch throughput: N due messages, sent to a local aiosmtpd and to the file
transport, by one and by two dispatcher processes; plus each dispatcher's peak memory.

    python -m bench dispatch [--n 10000] [--batch-size 50] [--transports smtp,file] [--workers 1,2]

Database: BENCH_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/retreat_bench,
created if missing); falls back to a SQLite file when PostgreSQL is unreachable. The SMTP server
runs in this process (its own thread); dispatchers are separate processes started together
behind a barrier, so the time measured is dispatching only (not interpreter start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import print_table, write_results

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/retreat_bench"


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------


def database_url(tmp: Path) -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
    if not url.startswith("postgresql"):
        return url
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    try:
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            if not c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}).scalar():
                c.execute(text(f'CREATE DATABASE "{u.database}"'))
        admin.dispose()
        return url
    except Exception as exc:  # noqa: BLE001 - any failure: fall back to SQLite
        print(f"PostgreSQL unavailable ({type(exc).__name__}: {exc}); using SQLite")
        return f"sqlite:///{tmp / 'bench.sqlite3'}"


def make_app(url: str, **extra):
    from retreat import create_app

    cfg = {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
           "SECRET_KEY_GENERATED": False, "BASE_URL": "http://127.0.0.1:5000", "ENV_NAME": "bench"}
    cfg.update(extra)
    return create_app(cfg)


def reset_and_enqueue(app, n: int, due: datetime) -> float:
    """Empty the outbox and insert ``n`` due messages in one transaction; returns seconds taken."""
    from sqlalchemy import delete, insert

    from retreat.extensions import db
    from retreat.models import OutboxMessage

    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        db.session.execute(delete(OutboxMessage))
        rows = [dict(dedupe_key=f"bench-{i}", recipient_email=f"p{i}@example.com", recipient_name=f"Person {i}",
                     recipient_tz=("America/Denver", "Europe/Berlin", "Asia/Tokyo")[i % 3], template="test_notice",
                     context={"title": "Bench", "note": f"Message {i}", "start_at": (due + timedelta(days=3)).isoformat()},
                     essential=True, due_at=due, next_attempt_at=due, status="pending", attempts=0, kind="email",
                     created_at=due, updated_at=due)
                for i in range(n)]
        for chunk in range(0, n, 2000):
            db.session.execute(insert(OutboxMessage), rows[chunk:chunk + 2000])
        db.session.commit()
        db.engine.dispose()
    return time.perf_counter() - started


def status_counts(app) -> dict:
    from sqlalchemy import func, select

    from retreat.extensions import db
    from retreat.models import OutboxMessage

    with app.app_context():
        counts = dict(db.session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
        db.session.remove()
        db.engine.dispose()
    return counts


# --------------------------------------------------------------------------------------------
# SMTP sink (counts only; parsing would make the server the bottleneck)
# --------------------------------------------------------------------------------------------


class CountingSink:
    def __init__(self):
        from aiosmtpd.controller import Controller

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.count = 0
        self.message_ids: set[bytes] = set()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        head = envelope.content[:4000]
        for line in head.split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                self.message_ids.add(line.strip())
                break
        await asyncio.sleep(0)
        return "250 OK"


# --------------------------------------------------------------------------------------------
# Worker process
# --------------------------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _worker(index: int, url: str, extra: dict, batch_size: int, now_iso: str, barrier, out) -> None:
    from retreat.messaging.dispatcher import dispatch_due

    app = make_app(url, **extra)
    now = datetime.fromisoformat(now_iso)
    with app.app_context():
        # Warm up: imports, template compilation, a connection in the pool.
        from retreat.messaging.render import render_email

        render_email("test_notice", {"note": "warm"}, recipient_tz="UTC")
        from retreat.extensions import db

        db.session.execute(db.text("SELECT 1"))
        db.session.remove()
        rss_before = _rss_kb()
        barrier.wait()
        started = time.time()
        result = dispatch_due(now, batch_size=batch_size, worker=f"bench-{index}")
        finished = time.time()
    out.put({"index": index, "sent": result.sent, "failed": result.failed, "retried": result.retried,
             "started": started, "finished": finished, "rss_before_kb": rss_before, "rss_after_kb": _rss_kb(),
             "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


# --------------------------------------------------------------------------------------------
# One configuration
# --------------------------------------------------------------------------------------------


def run_one(url: str, transport: str, workers: int, n: int, batch_size: int, tmp: Path) -> dict:
    now = datetime.now(UTC)
    app = make_app(url)
    enqueue_s = reset_and_enqueue(app, n, now - timedelta(seconds=1))
    sink = None
    if transport == "smtp":
        sink = CountingSink()
        sink.controller.start()
        extra = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": sink.port, "SMTP_STARTTLS": False}
    else:
        outdir = tmp / f"outbox-{workers}"
        extra = {"SMTP_HOST": "", "MAIL_OUTBOX_DIR": str(outdir)}
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, url, extra, batch_size, now.isoformat(), barrier, out))
             for i in range(workers)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    reports = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join(60)
    if sink is not None:
        sink.controller.stop()
    elapsed = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    counts = status_counts(app)
    received = sink.count if sink is not None else len(list((tmp / f"outbox-{workers}").glob("*.eml")))
    unique = len(sink.message_ids) if sink is not None else received
    return {
        "transport": transport, "dispatchers": workers, "messages": n, "batch_size": batch_size,
        "seconds": round(elapsed, 3), "per_second": round(n / elapsed, 1) if elapsed else None,
        "sent_by_dispatcher": [r["sent"] for r in sorted(reports, key=lambda r: r["index"])],
        "received": received, "unique_message_ids": unique, "statuses": counts,
        "peak_rss_mb": [round(r["peak_rss_kb"] / 1024, 1) for r in reports],
        # Current RSS when dispatching starts and ends: what dispatching itself costs. The peak
        # (ru_maxrss) includes app start-up, which is most of it.
        "rss_mb": [f"{r['rss_before_kb'] / 1024:.0f}->{r['rss_after_kb'] / 1024:.0f}" for r in reports],
        "enqueue_seconds": round(enqueue_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dispatch", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--transports", default="smtp,file")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv or [])

    tmp = Path(tempfile.mkdtemp(prefix="retreat-bench-"))
    os.environ.setdefault("RETREAT_INSTANCE_DIR", str(tmp / "instance"))
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnop")
    url = database_url(tmp)
    engine = url.split("://", 1)[0]
    print(f"outbox dispatch: {args.n} due messages, batch {args.batch_size}, database {engine}, cpus {os.cpu_count()}")
    runs = []
    for transport in args.transports.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            r = run_one(url, transport, workers, args.n, args.batch_size, tmp)
            runs.append(r)
            ok = r["statuses"] == {"sent": args.n} and r["unique_message_ids"] == args.n == r["received"]
            r["exactly_once"] = ok
            print(f"  {transport:<4} x{workers}: {r['per_second']} msg/s ({'ok' if ok else 'MISMATCH'})", flush=True)
    print()
    print_table(
        ["transport", "dispatchers", "messages", "seconds", "msg/s", "sent per dispatcher", "RSS MB start->end",
         "peak RSS MB", "exactly once"],
        [[r["transport"], r["dispatchers"], r["messages"], r["seconds"], r["per_second"],
          "/".join(map(str, r["sent_by_dispatcher"])), " ".join(r["rss_mb"]),
          "/".join(map(str, r["peak_rss_mb"])), "yes" if r["exactly_once"] else "NO"] for r in runs],
    )
    path = write_results("dispatch", {"database": engine, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                                      "at": datetime.now(UTC).isoformat(), "runs": runs})
    print("(each dispatcher is its own process; peak RSS includes app start-up)")
    print(f"\nwritten to {path}")
    return 0 if all(r["exactly_once"] for r in runs) else 1
