"""Start-up configuration checks: one line naming the variable, exit status 2, nothing written.

The real entry points run in subprocesses: ``python -c 'import wsgi'`` (gunicorn's import), the
flask CLI and the scheduler command, each with a bad environment and a fresh instance directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from retreat.config import ConfigurationError, check_configuration

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))
GOOD_SECRET = "Vb3q9ZpL2xT7mK4wN8cR1yH6jD5sF0gA-uE_iO"
GOOD_METRICS_TOKEN = "mT4r9QpX2vL7nK8wZ3cB6yH1jD5sF0gE"
GOOD = {
    "RETREAT_ENV": "production",
    "SECRET_KEY": GOOD_SECRET,
    "CLINICAL_DATA_KEYS": Fernet.generate_key().decode(),
    "STRIPE_API_BASE": "https://api.stripe.com",
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_abc",
    "DATABASE_URL": "sqlite:////nonexistent-dir/never.sqlite3",
    "METRICS_TOKEN": GOOD_METRICS_TOKEN,
}


def prod(**extra) -> dict:
    cfg = {"ENV_NAME": "production", "SECRET_KEY": GOOD_SECRET, "SECRET_KEY_GENERATED": False,
           "CLINICAL_DATA_KEYS": GOOD["CLINICAL_DATA_KEYS"], "STRIPE_API_BASE": "https://api.stripe.com",
           "STRIPE_SECRET_KEY": "sk_live_abc", "STRIPE_PUBLISHABLE_KEY": "pk_live_abc",
           "METRICS_TOKEN": GOOD_METRICS_TOKEN}
    cfg.update(extra)
    return cfg


def run(args: list[str], tmp_path: Path, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETREAT_", "STRIPE_", "SECRET_KEY",
                                                                  "CLINICAL_DATA_KEYS", "FIELD_ENCRYPTION",
                                                                  "METRICS_", "LOG_"))}
    env.update(GOOD)
    env["RETREAT_INSTANCE_DIR"] = str(tmp_path / "instance")
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("secret, reason", [
    ("a" * 32, "fewer than 16 distinct"),
    ("k" * 48, "fewer than 16 distinct"),
    ("abcdefghijklmnopq" * 3, "repeated pattern"),
    ("short-Secret-1", "shorter than 32"),
    ("test-secret-key-that-is-long-enough-0123456789", "published sample"),
    ("insecure-default-" + GOOD_SECRET, "published sample"),
    ("", "not set"),
])
def test_weak_secret_keys_are_refused(secret, reason):
    with pytest.raises(ConfigurationError, match=reason) as err:
        check_configuration(prod(SECRET_KEY=secret))
    assert err.value.variable == "SECRET_KEY" and "\n" not in str(err.value)
    assert "secrets.token_urlsafe(48)" in str(err.value)


@pytest.mark.parametrize("keys, reason", [
    ("not-a-fernet-key", "key 1 of 1 is not a Fernet key"),
    (Fernet.generate_key().decode() + ",not-a-fernet-key", "key 2 of 2 is not a Fernet key"),
    ("YWJj", "key 1 of 1 is not a Fernet key"),  # valid base64, 3 bytes
    ("", "is not set"),
])
def test_bad_clinical_data_keys_are_refused(keys, reason):
    with pytest.raises(ConfigurationError, match=reason) as err:
        check_configuration(prod(CLINICAL_DATA_KEYS=keys, FIELD_ENCRYPTION_KEYS=""))
    assert err.value.variable == "CLINICAL_DATA_KEYS"


def test_bad_clinical_data_keys_are_refused_outside_production_too():
    with pytest.raises(ConfigurationError, match="CLINICAL_DATA_KEYS"):
        check_configuration({"ENV_NAME": "development", "CLINICAL_DATA_KEYS": "nope"})
    check_configuration({"ENV_NAME": "development", "CLINICAL_DATA_KEYS": ""})  # generated in development


@pytest.mark.parametrize("changes, variable", [
    ({"STRIPE_API_BASE": "http://127.0.0.1:8420"}, "STRIPE_API_BASE"),
    ({"STRIPE_API_BASE": "http://localstripe:8420"}, "STRIPE_API_BASE"),
    ({"STRIPE_API_BASE": "http://[::1]:8420"}, "STRIPE_API_BASE"),
    ({"STRIPE_SECRET_KEY": "sk_test_123"}, "STRIPE_SECRET_KEY"),
    ({"STRIPE_PUBLISHABLE_KEY": "pk_test_123"}, "STRIPE_PUBLISHABLE_KEY"),
])
def test_stripe_test_mode_is_refused_in_production_unless_allowed(changes, variable):
    with pytest.raises(ConfigurationError) as err:
        check_configuration(prod(**changes))
    assert err.value.variable == variable and "ALLOW_STRIPE_TEST_MODE=1" in str(err.value)
    check_configuration(prod(ALLOW_STRIPE_TEST_MODE=True, **changes))
    check_configuration({**prod(**changes), "ENV_NAME": "development"})


def test_a_good_production_configuration_passes():
    check_configuration(prod())


@pytest.mark.parametrize("token, reason", [
    ("", "is not set"),
    ("short-token", "shorter than 32"),
    ("m" * 40, "fewer than 16 distinct"),
    ("changeme", "published sample"),
])
def test_production_needs_a_strong_metrics_token_or_metrics_off(token, reason):
    with pytest.raises(ConfigurationError, match=reason) as err:
        check_configuration(prod(METRICS_TOKEN=token))
    assert err.value.variable == "METRICS_TOKEN" and "METRICS_ENABLED=0" in str(err.value)
    check_configuration(prod(METRICS_TOKEN=token, METRICS_ENABLED=False))  # switched off explicitly
    check_configuration({**prod(METRICS_TOKEN=""), "ENV_NAME": "development"})  # off by default in development


@pytest.mark.parametrize("changes, variable", [
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
])
def test_bad_log_settings_are_refused(changes, variable):
    with pytest.raises(ConfigurationError) as err:
        check_configuration(prod(**changes))
    assert err.value.variable == variable and "\n" not in str(err.value)
    check_configuration(prod(LOG_LEVEL="warning", LOG_FORMAT="TEXT"))  # case does not matter


@pytest.mark.parametrize("changes, variable, words", [
    ({"TRUSTED_PROXY_HOPS": -1}, "TRUSTED_PROXY_HOPS", "0 to 5"),
    ({"TRUSTED_PROXY_HOPS": 9}, "TRUSTED_PROXY_HOPS", "number of reverse proxies"),
    ({"TRUSTED_PROXY_HOPS": 1, "TRUSTED_PROXY_ADDRESSES": " , "}, "TRUSTED_PROXY_ADDRESSES", "is empty"),
    ({"TRUSTED_PROXY_HOPS": 1, "TRUSTED_PROXY_ADDRESSES": "10.0.0.5,proxy"}, "TRUSTED_PROXY_ADDRESSES", "'proxy'"),
])
def test_a_wrong_proxy_setting_is_refused_naming_the_variable(changes, variable, words):
    with pytest.raises(ConfigurationError) as err:
        check_configuration(prod(**changes))
    assert err.value.variable == variable and words in str(err.value) and "\n" not in str(err.value)
    check_configuration(prod(TRUSTED_PROXY_HOPS=1, TRUSTED_PROXY_ADDRESSES="10.0.0.5, 10.1.0.0/16, ::1"))
    check_configuration(prod(TRUSTED_PROXY_HOPS=0, TRUSTED_PROXY_ADDRESSES="anything: not used without proxies"))


@pytest.mark.parametrize("entry", ["wsgi", "flask-cli", "scheduler", "gunicorn"])
@pytest.mark.parametrize("env_changes, variable", [
    ({"SECRET_KEY": "a" * 32}, "SECRET_KEY"),
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"CLINICAL_DATA_KEYS": "not-a-fernet-key"}, "CLINICAL_DATA_KEYS"),
    ({"CLINICAL_DATA_KEYS": None}, "CLINICAL_DATA_KEYS"),
    ({"STRIPE_API_BASE": None}, "STRIPE_API_BASE"),  # the default is localstripe
    ({"STRIPE_SECRET_KEY": "sk_test_x"}, "STRIPE_SECRET_KEY"),
    ({"METRICS_TOKEN": None}, "METRICS_TOKEN"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"TRUSTED_PROXY_HOPS": "two"}, "TRUSTED_PROXY_HOPS"),
    ({"TRUSTED_PROXY_HOPS": "1", "TRUSTED_PROXY_ADDRESSES": "nginx.internal"}, "TRUSTED_PROXY_ADDRESSES"),
])
def test_entry_points_refuse_with_one_line_and_write_nothing(tmp_path, entry, env_changes, variable):
    args = {"wsgi": [sys.executable, "-c", "import wsgi"],
            "flask-cli": [FLASK, "--app", "wsgi", "db", "current"],
            "scheduler": [FLASK, "--app", "wsgi", "scheduler", "run"],
            "gunicorn": [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "wsgi:app"]}[entry]
    result = run(args, tmp_path, **env_changes)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Refusing to start: {variable} "), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "instance").exists()


def test_keys_generate_runs_in_production_with_no_keys_set(tmp_path):
    result = run([FLASK, "--app", "wsgi", "keys", "generate"], tmp_path, CLINICAL_DATA_KEYS=None, SECRET_KEY=None)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    Fernet(key.encode())  # a usable key
    assert not (tmp_path / "instance" / "secret_key").exists()
    assert not (tmp_path / "instance" / "field_key").exists()


def test_seed_demo_refuses_in_production(tmp_path):
    result = run([FLASK, "--app", "wsgi", "seed-demo"], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RETREAT_ENV=production" in lines[0] and "Traceback" not in result.stderr
    assert "retreat-demo-2026" not in result.stdout + result.stderr


def test_development_refuses_a_malformed_key_too_and_writes_nothing(tmp_path):
    result = run([sys.executable, "-c", "import wsgi"], tmp_path, RETREAT_ENV="development", SECRET_KEY=None,
                 CLINICAL_DATA_KEYS="not-a-fernet-key")
    assert result.returncode == 2 and result.stderr.startswith("Refusing to start: CLINICAL_DATA_KEYS ")
    assert not (tmp_path / "instance").exists()


def test_development_start_generates_its_secret_key_once_the_checks_pass(tmp_path):
    code = "import wsgi; print(wsgi.app.config['SECRET_KEY'])"
    first = run([sys.executable, "-c", code], tmp_path, RETREAT_ENV="development", SECRET_KEY=None)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "instance" / "secret_key"
    assert path.read_text().strip() == first.stdout.strip() and oct(path.stat().st_mode & 0o777) == "0o600"
    again = run([sys.executable, "-c", code], tmp_path, RETREAT_ENV="development", SECRET_KEY=None)
    assert again.stdout == first.stdout
