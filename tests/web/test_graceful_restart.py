"""A graceful restart (SIGHUP) under traffic loses no request and ends with the configured workers
(issue #22 item 7): real gunicorn with gunicorn.conf.py, a steady stream of requests, two HUPs.
How long requests waited is measured by `python -m bench restart`, not asserted here."""

from __future__ import annotations

import argparse

import pytest

from tests.conftest import TEST_DATABASE_URL, is_postgres


@pytest.mark.skipif(not is_postgres(), reason="bench.faults.scratch_db makes a PostgreSQL database")
def test_sighup_twice_under_traffic_fails_no_request(monkeypatch):
    from bench import restart

    monkeypatch.setenv("FAULTS_DATABASE_URL", TEST_DATABASE_URL)
    report = restart.run(argparse.Namespace(workers=2, clients=2, seconds=9, max_requests=300, path="/healthz"))
    assert report["requests"] >= 250, report  # the stream ran across both restarts
    assert all(h["requests"] > 0 for h in report["per_hup"]), report
    assert report["failed"] == 0 and report["failures"] == [], report  # no refusal, no error, no 5xx
    assert report["workers_after"] == 2, report  # the old workers left: the pool is back to its size
