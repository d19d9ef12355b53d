"""Stripe reconciliation at scale: time and peak memory for 10,000 and 100,000 balance transactions.

    python -m bench reconcile [--sizes 10000,100000] [--page-size 100] [--no-memory-pass]

For each size N the benchmark records Stripe-format list pages (newest first, ``page_size``
objects each) to a temporary directory: N balance transactions (90 % charges with a Stripe fee,
10 % refunds), the matching charges (their PaymentIntent expanded, with the enrollment in its
metadata), refunds and a few payouts. A loopback HTTP server in its own process serves them the
way Stripe does (``limit``, ``starting_after``, ``created[gte]``/``[lte]``; ``tests/stripe_pages``),
and the gateway's API base points at it. The ledger gets the matching rows, except a few planted
problems: 0.1 % of the charges are missing from the ledger, 0.1 % have a different amount, and
0.1 % of ledger charges have no Stripe object at all (Stripe answers 404 for them).

Then ``reconciliation.run`` reconciles the window, twice: once plain for the time, once under
``tracemalloc`` for the peak of Python memory. The report gives both per size, the growth ratios
(the goal: time grows like N, memory stays flat) and checks the categories found are exactly the
planted ones.

Database: BENCH_DATABASE_URL if set (it is emptied and rebuilt), else a scratch SQLite file.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import print_table, write_results

SPREAD_DAYS = 30
ENROLLMENTS = 200
DEPOSIT = 50000


def fee_of(amount: int) -> int:
    return amount * 29 // 1000 + 30


def plan(n: int) -> dict:
    """Which indexes are refunds and which are planted problems (every 1000th, offset)."""
    return {"refund": lambda i: i % 10 == 9, "missing_in_ledger": lambda i: i % 1000 == 3,
            "mismatch": lambda i: i % 1000 == 5, "ghosts": max(1, n // 1000)}


def record_pages(directory: Path, n: int, *, end_ts: int, page_size: int, enrollment_ids: list[int]) -> None:
    """N balance transactions with their charges, refunds and payouts, newest first, straight to disk."""
    from tests.stripe_pages import PageWriter

    step = SPREAD_DAYS * 86400 / n
    p = plan(n)
    bts = PageWriter(directory, "balance_transactions", page_size)
    charges = PageWriter(directory, "charges", page_size)
    refunds = PageWriter(directory, "refunds", page_size)
    for i in range(n):
        created = end_ts - int(i * step) - 1
        if p["refund"](i):
            amount = 10000
            bts.add({"id": f"txn_r{i:07d}", "object": "balance_transaction", "type": "refund",
                     "reporting_category": "refund", "amount": -amount, "fee": 0, "net": -amount, "currency": "usd",
                     "source": f"re_b{i:07d}", "status": "available", "created": created,
                     "description": "REFUND FOR CHARGE"})
            refunds.add({"id": f"re_b{i:07d}", "object": "refund", "amount": amount, "currency": "usd",
                         "status": "succeeded", "payment_intent": f"pi_b{i - 1:07d}", "charge": f"ch_b{i - 1:07d}",
                         "metadata": {}, "created": created})
            continue
        enr = enrollment_ids[i % len(enrollment_ids)]
        fee = fee_of(DEPOSIT)
        bts.add({"id": f"txn_c{i:07d}", "object": "balance_transaction", "type": "charge",
                 "reporting_category": "charge", "amount": DEPOSIT, "fee": fee, "net": DEPOSIT - fee,
                 "currency": "usd", "source": f"ch_b{i:07d}", "status": "available", "created": created,
                 "description": None})
        charges.add({"id": f"ch_b{i:07d}", "object": "charge", "amount": DEPOSIT, "amount_captured": DEPOSIT,
                     "currency": "usd", "status": "succeeded", "paid": True, "captured": True, "refunded": False,
                     "disputed": False, "balance_transaction": f"txn_c{i:07d}", "created": created, "metadata": {},
                     "payment_intent": {"id": f"pi_b{i:07d}", "object": "payment_intent", "amount": DEPOSIT,
                                        "currency": "usd", "status": "succeeded", "created": created,
                                        "metadata": {"enrollment": str(enr), "kind": "deposit"}}})
    payouts = PageWriter(directory, "payouts", page_size)
    for k in range(max(1, n // 1000)):
        payouts.add({"id": f"po_b{k:05d}", "object": "payout", "amount": 1_000_000, "currency": "usd",
                     "status": "paid", "arrival_date": end_ts - k * 86400, "created": end_ts - k * 86400 - 3600,
                     "balance_transaction": f"txn_p{k:05d}"})
    for w in (bts, charges, refunds, payouts):
        w.close()


def prepare_database(app, n: int, *, end_ts: int) -> list[int]:
    """Fresh tables, ENROLLMENTS enrollments, and the ledger rows that match the recorded Stripe."""
    from sqlalchemy import insert

    from retreat.extensions import db
    from retreat.models import Cohort, Enrollment, Retreat, Role, User
    from retreat.payments.models import LedgerEntry

    with app.app_context():
        db.drop_all()
        db.create_all()
        now = datetime.fromtimestamp(end_ts, UTC)
        retreat = Retreat(title="Bench retreat", slug="bench", description="", location="Colorado")
        cohort = Cohort(retreat=retreat, title="Bench cohort", starts_at=now + timedelta(days=60),
                        ends_at=now + timedelta(days=66), timezone="America/Denver", capacity=ENROLLMENTS,
                        seats_taken=0, currency="USD", price_minor=450000, deposit_minor=DEPOSIT, status="open",
                        deposit_timing="before_clearance", hold_minutes=30, offer_hours=48)
        db.session.add(cohort)
        db.session.flush()
        users = [User(email=f"bench{i}@example.com", name=f"Bench {i}", role=Role.PARTICIPANT.value, tz="UTC")
                 for i in range(ENROLLMENTS)]
        db.session.add_all(users)
        db.session.flush()
        enrs = [Enrollment(cohort_id=cohort.id, participant_id=u.id, status="deposit_paid", seat="confirmed",
                           applied_at=now, holds_taken=1, offers_made=0, motivation="", lodging="",
                           created_at=now, updated_at=now) for u in users]
        db.session.add_all(enrs)
        db.session.flush()
        ids = [e.id for e in enrs]
        p = plan(n)
        step = SPREAD_DAYS * 86400 / n
        rows = []

        def flush_rows():
            if rows:
                db.session.execute(insert(LedgerEntry), rows)
                rows.clear()

        def row(enr, kind, amount, obj, created):
            rows.append({"enrollment_id": enr, "entry_type": kind, "amount_minor": amount, "currency": "USD",
                         "stripe_object_id": obj, "payment_id": None, "refund_id": None, "memo": "bench",
                         "created_at": created})
            if len(rows) >= 5000:
                flush_rows()

        for i in range(n):
            created = datetime.fromtimestamp(end_ts - int(i * step) - 1 + 2, UTC)  # the webhook came 2 s later
            enr = ids[i % len(ids)]
            if p["refund"](i):
                row(ids[(i - 1) % len(ids)], "refund", -10000, f"re_b{i:07d}", created)
                continue
            if p["missing_in_ledger"](i):
                continue
            row(enr, "charge", DEPOSIT - (100 if p["mismatch"](i) else 0), f"pi_b{i:07d}", created)
            row(enr, "fee", -fee_of(DEPOSIT), f"txn_c{i:07d}", created)
        for k in range(p["ghosts"]):  # in the ledger, unknown to Stripe
            row(ids[k % len(ids)], "charge", DEPOSIT, f"pi_ghost{k:05d}", datetime.fromtimestamp(end_ts - 600, UTC))
        flush_rows()
        db.session.commit()
        if db.engine.dialect.name == "postgresql":  # as autovacuum would after a load this size
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        db.session.remove()
    return ids


def expected(n: int) -> dict:
    p = plan(n)
    charges = sum(1 for i in range(n) if not p["refund"](i))
    refunds = n - charges
    missing = sum(1 for i in range(n) if not p["refund"](i) and p["missing_in_ledger"](i))
    mismatch = sum(1 for i in range(n) if not p["refund"](i) and p["mismatch"](i))
    # a missing charge's fee is missing too (its balance transaction has a fee no ledger row records)
    return {"matched": (charges - missing - mismatch) + refunds + (charges - missing),
            "missing_in_ledger": 2 * missing, "mismatch": mismatch, "missing_in_stripe": p["ghosts"], "dispute": 0}


def reconcile_once(app, since: datetime, until: datetime, page_size: int, *, trace: bool) -> dict:
    from sqlalchemy import delete

    from retreat.extensions import db
    from retreat.finance import reconciliation, reconciliation_report
    from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun

    with app.app_context():
        db.session.execute(delete(ReconciliationItem))
        db.session.execute(delete(ReconciliationRun))
        db.session.commit()
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        run = reconciliation.run(since=since, until=until, now=datetime.now(UTC), page_size=page_size)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else None
        if trace:
            tracemalloc.stop()
        result = {"seconds": elapsed, "peak_bytes": peak, "status": run.status, "error": run.error,
                  "objects": run.objects_seen, "counts": reconciliation_report.counts(run)}
        db.session.remove()
        return result


def bench_size(n: int, *, page_size: int, memory_pass: bool, url: str | None) -> dict:
    from retreat import create_app
    from tests.stripe_pages import RecordedStripeProcess

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-reconcile-{n}-"))
    db_url = url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    end_ts = int(time.time()) - 60
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "bench-secret-key-0123456789-abcdefghij",
                      "SECRET_KEY_GENERATED": False, "BASE_URL": "http://127.0.0.1:5000", "ENV_NAME": "bench",
                      "STRIPE_LIST_CREATED_FILTER": True})
    t = time.perf_counter()
    ids = prepare_database(app, n, end_ts=end_ts)
    record_pages(tmp / "stripe", n, end_ts=end_ts, page_size=page_size, enrollment_ids=ids)
    setup = time.perf_counter() - t
    since = datetime.fromtimestamp(end_ts - SPREAD_DAYS * 86400 - 60, UTC)
    until = datetime.fromtimestamp(end_ts + 60, UTC)
    with RecordedStripeProcess(tmp / "stripe") as base:
        app.config["STRIPE_API_BASE"] = base
        plain = reconcile_once(app, since, until, page_size, trace=False)
        traced = reconcile_once(app, since, until, page_size, trace=True) if memory_pass else None
    with app.app_context():
        from retreat.extensions import db

        db.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    want = expected(n)
    got = plain["counts"]
    return {"n": n, "setup_seconds": setup, "seconds": plain["seconds"], "objects": plain["objects"],
            "peak_bytes": traced["peak_bytes"] if traced else None,
            "traced_seconds": traced["seconds"] if traced else None, "counts": got, "expected": want,
            "ok": plain["status"] == "done" and got == want, "error": plain["error"],
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "database": db_url.split(":")[0]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench reconcile")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--no-memory-pass", action="store_true", help="skip the tracemalloc pass")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    url = os.environ.get("BENCH_DATABASE_URL")
    results = []
    for n in sizes:
        print(f"reconcile: {n} balance transactions ...", flush=True)
        res = bench_size(n, page_size=args.page_size, memory_pass=not args.no_memory_pass, url=url)
        results.append(res)
        if not res["ok"]:
            print(f"  categories differ from the planted ones: got {res['counts']}, expected {res['expected']} "
                  f"{res['error']}")
    rows = []
    for r in results:
        peak = f"{r['peak_bytes'] / 1e6:.1f}" if r["peak_bytes"] is not None else "-"
        rows.append([r["n"], r["objects"], f"{r['seconds']:.1f}", f"{r['objects'] / r['seconds']:.0f}", peak,
                     r["counts"]["matched"], r["counts"]["missing_in_ledger"], r["counts"]["mismatch"],
                     r["counts"]["missing_in_stripe"], "yes" if r["ok"] else "NO"])
    print_table(["balance txns", "Stripe objects", "time s", "objects/s", "peak MB (tracemalloc)", "matched",
                 "missing in ledger", "mismatch", "missing in Stripe", "as planted"], rows)
    ratios = {}
    if len(results) >= 2:
        a, b = results[0], results[-1]
        ratios = {"size": b["n"] / a["n"], "time": b["seconds"] / a["seconds"]}
        if a["peak_bytes"] and b["peak_bytes"]:
            ratios["peak_memory"] = b["peak_bytes"] / a["peak_bytes"]
        print(f"growth {a['n']} -> {b['n']} (x{ratios['size']:g}): time x{ratios['time']:.2f}"
              + (f", peak memory x{ratios['peak_memory']:.2f}" if "peak_memory" in ratios else "")
              + " (goal: time about x size, memory about x1)")
    path = write_results("reconcile", {"results": results, "ratios": ratios, "page_size": args.page_size})
    print(f"results: {path}")
    return 0 if all(r["ok"] for r in results) else 1
