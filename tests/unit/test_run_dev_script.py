"""`make run` / scripts/run-dev.sh: emailed links follow the port, localstripe's state is the demo's (issue #16, 24)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BASE_URL", "RETREAT_INSTANCE_DIR", "STRIPE_SECRET_KEY", "MAKEFLAGS", "MFLAGS")}
    env.update(extra)
    return env


def _plan(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def _script(*args, **env):
    out = subprocess.run(["bash", "scripts/run-dev.sh", "--dry-run", *args], cwd=ROOT, env=_env(**env),
                         capture_output=True, text=True, timeout=30, check=True)
    return _plan(out.stdout)


def test_base_url_follows_host_and_port():
    plan = _script("127.0.0.1", "5101")
    assert plan["BASE_URL"] == "http://127.0.0.1:5101"
    assert _script("0.0.0.0", "8080", "8421")["BASE_URL"] == "http://0.0.0.0:8080"
    assert _script()["BASE_URL"] == "http://127.0.0.1:5000"


def test_a_base_url_set_by_the_operator_is_kept():
    assert _script("127.0.0.1", "5101", BASE_URL="https://retreat.example.org")["BASE_URL"] == (
        "https://retreat.example.org")


def test_localstripe_state_lives_in_the_instance_dir(tmp_path):
    plan = _script("127.0.0.1", "5101", "8499", RETREAT_INSTANCE_DIR=str(tmp_path))
    assert plan["STRIPE_API_BASE"] == "http://127.0.0.1:8499"
    assert plan["LOCALSTRIPE_STATE"] == f"{tmp_path}/localstripe.pickle"
    assert "/tmp/localstripe.pickle" not in plan.values()
    assert "LOCALSTRIPE_STATE" not in _script(STRIPE_SECRET_KEY="sk_live_x")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_passes_the_port_through():
    out = subprocess.run(["make", "-s", "-o", "install", "run", "PORT=5101", "RUN_FLAGS=--dry-run"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30, check=True)
    assert _plan(out.stdout)["BASE_URL"] == "http://127.0.0.1:5101"


def test_the_localstripe_wrapper_points_the_state_file(tmp_path):
    pytest.importorskip("localstripe")
    import importlib.util

    spec = importlib.util.spec_from_file_location("localstripe_instance", ROOT / "scripts/localstripe_instance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from localstripe import resources

    saved = (resources.Store.try_load_from_disk, resources.Store.dump_to_disk)
    try:
        state = tmp_path / "localstripe.pickle"
        module.use_state_file(state)
        store = resources.Store()
        store["cus_1"] = {"id": "cus_1"}
        assert state.exists()
        again = resources.Store()
        again.try_load_from_disk()
        assert again == {"cus_1": {"id": "cus_1"}}
    finally:
        resources.Store.try_load_from_disk, resources.Store.dump_to_disk = saved
