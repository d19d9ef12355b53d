"""The ``localstripe`` fixture: a real fake-Stripe server on a free loopback port, for the session.

Import the fixtures into a test module (``from tests.localstripe import localstripe, stripe_app``).
The server is the PyPI ``localstripe`` (binary next to the interpreter); with it missing the
tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port

BIN = Path(sys.executable).with_name("localstripe")


@pytest.fixture(scope="session")
def localstripe():
    binary = str(BIN) if BIN.exists() else shutil.which("localstripe")
    if not binary:
        pytest.skip("localstripe is not installed")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)
    proc = subprocess.Popen([binary, "--port", str(port), "--from-scratch"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"localstripe exited: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("localstripe did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture()
def stripe_app(app, localstripe):
    """The session app pointed at localstripe (for tests using ``db``/``client``)."""
    old = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = localstripe
    yield app
    app.config["STRIPE_API_BASE"] = old
