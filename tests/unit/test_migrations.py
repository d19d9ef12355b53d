"""Migrations: upgrade, downgrade to base and upgrade again run cleanly; models and migrations agree."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from retreat import create_app
from retreat.extensions import db
from tests.conftest import _TMP, TEST_DATABASE_URL, base_config, is_postgres


@pytest.fixture()
def scratch_url():
    """A database of its own, so the migrations start from nothing."""
    if is_postgres():
        url = make_url(TEST_DATABASE_URL)
        name = f"{url.database}_migr_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        yield f"sqlite:///{_TMP / f'migr-{uuid.uuid4().hex[:8]}.sqlite3'}"


def _diff(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def test_upgrade_downgrade_upgrade_and_models_agree(scratch_url):
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=scratch_url))
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "audit_events", "alembic_version"} <= tables
        assert _diff(app) == [], "models and migrations disagree: run `flask db migrate` and review"
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert _diff(app) == []
        db.engine.dispose()


@pytest.mark.skipif(not is_postgres(), reason="the append-only trigger is PostgreSQL's")
def test_audit_log_is_append_only_in_the_database(scratch_url):
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=scratch_url))
    with app.app_context():
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_events (at, action) VALUES (now(), 'test.event')"))
        for stmt in ("UPDATE audit_events SET action = 'tampered'", "DELETE FROM audit_events"):
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(stmt))
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT action FROM audit_events")).scalar_one() == "test.event"
        db.engine.dispose()
