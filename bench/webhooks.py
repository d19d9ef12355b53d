"""Webhook delivery throughput: N due deliveries POSTed to a loopback HTTP receiver by one and by
two dispatcher processes; checks that every event arrived exactly once, signed.

    python -m bench webhooks [--n 10000] [--batch-size 50] [--workers 1,2]

Database as in ``bench dispatch`` (BENCH_DATABASE_URL, PostgreSQL by default). The receiver is a
threading HTTP server in this process (tests/webhook_receiver.py); dispatchers are separate
processes started together behind a barrier, so the time measured is delivering only. Each
delivery is one new TCP connection (no keep-alive: receivers are different hosts in real use).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import print_table, write_results
from bench.dispatch import database_url, make_app

EXTRA = {"WEBHOOK_ALLOW_PRIVATE_URLS": True, "CLINICAL_DATA_KEYS": "T0mL8Zx6wUq4o0oJqj6Kj0M1j8Hc2h0rj0bF8z3bH0E="}


def reset_and_queue(app, n: int, url: str, due: datetime) -> tuple[float, str]:
    from sqlalchemy import delete, insert, select

    from retreat.extensions import db
    from retreat.messaging import webhooks
    from retreat.messaging.webhook_models import (
        WebhookAttempt,
        WebhookDelivery,
        WebhookEndpoint,
        WebhookEvent,
    )

    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        for model in (WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookEndpoint):
            db.session.execute(delete(model))
        secret = webhooks.new_secret()
        from retreat.core.crypto import encrypt_field

        ep = WebhookEndpoint(url=url, events=["payment.succeeded"], description="bench", secret_encrypted=encrypt_field(secret),
                             enabled=True, consecutive_failures=0, created_at=due, updated_at=due)
        db.session.add(ep)
        db.session.flush()
        events = [dict(public_id=f"evt_bench{i:08d}", type="payment.succeeded", created_at=due,
                       data={"payment_id": i, "amount_minor": 50000, "currency": "USD", "enrollment_id": i})
                  for i in range(n)]
        for chunk in range(0, n, 2000):
            db.session.execute(insert(WebhookEvent), events[chunk:chunk + 2000])
        ids = list(db.session.scalars(select(WebhookEvent.id).order_by(WebhookEvent.id)))
        rows = [dict(event_id=i, endpoint_id=ep.id, status="pending", attempts=0, next_attempt_at=due,
                     give_up_at=due + timedelta(hours=24), created_at=due, updated_at=due) for i in ids]
        for chunk in range(0, n, 2000):
            db.session.execute(insert(WebhookDelivery), rows[chunk:chunk + 2000])
        db.session.commit()
        db.engine.dispose()
    return time.perf_counter() - started, secret


def _worker(index: int, url: str, batch: int, now_iso: str, barrier, out) -> None:
    from retreat.messaging.webhook_dispatcher import deliver_due

    app = make_app(url, **EXTRA)
    with app.app_context():
        from retreat.extensions import db

        db.session.execute(db.text("SELECT 1"))
        db.session.remove()
        barrier.wait()
        started = time.time()
        result = deliver_due(None, batch=batch, worker=f"bench-{index}")
        finished = time.time()
    out.put({"index": index, "delivered": result.delivered, "retried": result.retried,
             "started": started, "finished": finished})


def run_one(url: str, workers: int, n: int, batch: int) -> dict:
    from tests.webhook_receiver import Receiver

    receiver = Receiver().start()
    app = make_app(url, **EXTRA)
    queue_s, secret = reset_and_queue(app, n, receiver.url, datetime.now(UTC) - timedelta(seconds=1))
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, url, batch, datetime.now(UTC).isoformat(), barrier, out))
             for i in range(workers)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    reports = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join(60)
    receiver.stop()
    elapsed = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    from retreat.messaging import webhooks

    ids = [r.json["id"] for r in receiver.received]
    signed = all(webhooks.verify(secret, r.headers["Retreat-Signature"], r.body, now=int(time.time()), tolerance=3600)
                 for r in receiver.received[:500])
    return {"dispatchers": workers, "deliveries": n, "batch_size": batch, "seconds": round(elapsed, 3),
            "per_second": round(n / elapsed, 1) if elapsed else None,
            "delivered_by_dispatcher": [r["delivered"] for r in sorted(reports, key=lambda r: r["index"])],
            "received": len(ids), "unique_event_ids": len(set(ids)), "signed": signed,
            "exactly_once": len(ids) == len(set(ids)) == n and signed, "queue_seconds": round(queue_s, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv or [])
    tmp = Path(tempfile.mkdtemp(prefix="retreat-bench-"))
    os.environ.setdefault("RETREAT_INSTANCE_DIR", str(tmp / "instance"))
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnop")
    url = database_url(tmp)
    engine = url.split("://", 1)[0]
    print(f"webhook delivery: {args.n} due deliveries, batch {args.batch_size}, database {engine}, cpus {os.cpu_count()}")
    runs = []
    for workers in (int(w) for w in args.workers.split(",")):
        r = run_one(url, workers, args.n, args.batch_size)
        runs.append(r)
        print(f"  x{workers}: {r['per_second']} deliveries/s ({'ok' if r['exactly_once'] else 'MISMATCH'})", flush=True)
    print()
    print_table(["dispatchers", "deliveries", "seconds", "deliveries/s", "per dispatcher", "exactly once, signed"],
                [[r["dispatchers"], r["deliveries"], r["seconds"], r["per_second"],
                  "/".join(map(str, r["delivered_by_dispatcher"])), "yes" if r["exactly_once"] else "NO"] for r in runs])
    path = write_results("webhooks", {"database": engine, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                                      "at": datetime.now(UTC).isoformat(), "runs": runs})
    print(f"\nwritten to {path}")
    return 0 if all(r["exactly_once"] for r in runs) else 1
