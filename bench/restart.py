"""Graceful restart (SIGHUP) under steady traffic (issue #22 item 7): does a rolling restart stall?

gunicorn (gunicorn.conf.py, --workers, default 2) on a loopback port against a throwaway database;
--clients threads send requests one after another to a cheap page (--path, default /healthz), each
on a new connection, at a steady pace, for --seconds (default 20, at most --max-requests in all, default 2000);
SIGHUP is sent twice (at a third and two thirds of the run). Prints failed requests (errors, not
200), the longest latency and the longest gap between two successful answers, overall and
around each HUP. `python -m bench restart`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from bench import faults


def _drive(port: int, path: str, stop_at: float, interval: float, budget: list[int], lock: threading.Lock,
           out: list) -> None:
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        start = time.monotonic()
        code, _ = faults.http_call(port, "GET", path, timeout=15)
        out.append((start, time.monotonic(), code))


def _children(pid: int) -> list[int]:
    """Live worker processes of the gunicorn master ``pid`` (Linux /proc)."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def run(args) -> dict:
    with faults.scratch_db("restart") as url:
        port = faults.free_port()
        proc = faults.spawn([sys.executable, "-m", "gunicorn", "-c", str(faults.ROOT / "gunicorn.conf.py"), "wsgi:app"],
                            faults.child_env(url, WEB_CONCURRENCY=args.workers, BIND=f"127.0.0.1:{port}"),
                            "gunicorn-restart.log")
        try:
            if not faults.wait_until(lambda: faults.http_call(port, "GET", "/healthz", timeout=2)[0] == 200, 60, 0.2):
                raise RuntimeError("gunicorn did not start")
            results: list[tuple[float, float, object]] = []
            lock, budget = threading.Lock(), [args.max_requests]
            t0 = time.monotonic()
            stop_at = t0 + args.seconds
            interval = args.clients * args.seconds / args.max_requests  # a steady pace over the whole run
            threads = [threading.Thread(target=_drive, args=(port, args.path, stop_at, interval, budget, lock, results))
                       for _ in range(args.clients)]
            for t in threads:
                t.start()
            hups = []
            for frac in (1 / 3, 2 / 3):
                time.sleep(max(0.0, t0 + args.seconds * frac - time.monotonic()))
                hups.append(time.monotonic())
                proc.send_signal(signal.SIGHUP)
            for t in threads:
                t.join()
            faults.wait_until(lambda: len(_children(proc.pid)) == args.workers, 10)
            workers_after = len(_children(proc.pid))
        finally:
            faults.stop(proc, timeout=30)
    results.sort()
    ok = [r for r in results if r[2] == 200]
    failed = [r for r in results if r[2] != 200]
    ends = sorted(r[1] for r in ok)
    gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    report = {
        "benchmark": "restart", "workers": args.workers, "clients": args.clients, "path": args.path,
        "workers_after": workers_after, "requests": len(results), "ok": len(ok), "failed": len(failed),
        "failures": sorted({str(r[2]) for r in failed}),
        "max_latency_ms": round(max((r[1] - r[0] for r in results), default=0) * 1000, 1),
        "longest_gap_between_answers_ms": round(max(gaps, default=0) * 1000, 1),
        "per_hup": [],
    }
    for h in hups:
        near = [r for r in results if h - 0.5 <= r[0] <= h + 5]
        report["per_hup"].append({
            "at_s": round(h - t0, 1), "requests": len(near),
            "failed": sum(1 for r in near if r[2] != 200),
            "max_latency_ms": round(max((r[1] - r[0] for r in near), default=0) * 1000, 1)})
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench restart", description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--max-requests", type=int, default=2000)
    p.add_argument("--path", default="/healthz")
    report = run(p.parse_args(argv))
    print(json.dumps(report, indent=2))
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
