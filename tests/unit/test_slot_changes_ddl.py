"""The slot-change trigger: migration 0023 and ``create_all`` install the same statements."""

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import text

from retreat.consults.models import SLOTS_NOTIFY_DDL
from tests.conftest import is_postgres

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _migration():
    path = next(MIGRATIONS.glob("*_0023_slots_notify.py"))
    spec = importlib.util.spec_from_file_location("migration_0023", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_installs_the_same_trigger_as_create_all():
    module = _migration()
    assert module.SLOTS_NOTIFY_DDL == SLOTS_NOTIFY_DDL
    # The downgrade drops what the upgrade creates.
    assert {"users_notify_slots", "consult_settings_notify_slots", "retreat_notify_slots()"} <= {
        s.split()[4] for s in module.SLOTS_NOTIFY_DROP}


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's")
def test_create_all_installed_both_triggers(db):
    names = set(db.session.scalars(text(
        "SELECT tgname FROM pg_trigger WHERE tgname IN ('users_notify_slots', 'consult_settings_notify_slots')")))
    assert names == {"users_notify_slots", "consult_settings_notify_slots"}


def test_sqlite_keeps_the_version_query(tmp_path):
    from retreat import create_app
    from retreat.consults import slot_changes
    from tests.conftest import base_config

    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'slots.sqlite3'}"))
    with app.app_context():
        assert slot_changes.current_version() is None
        assert slot_changes.for_app(app).listener is None


def test_slots_notify_is_read_from_the_environment(monkeypatch):
    from retreat.config import load_config

    assert load_config()["SLOTS_NOTIFY"] is True
    monkeypatch.setenv("SLOTS_NOTIFY", "0")
    assert load_config()["SLOTS_NOTIFY"] is False
