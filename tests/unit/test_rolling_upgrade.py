"""Expand then contract: the previous release's queries keep working while the new schema is live.

README "Rolling upgrades": a release's migration only adds (a nullable column here), so the
instances still running the previous release keep inserting and reading users until they are
restarted; a non-expand change (a NOT NULL column without a default, a rename) breaks those
queries at once, which is why it waits for a later release's contract step.
"""

from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import Column, MetaData, Table, Text, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from retreat import create_app
from retreat.accounts.models import User
from retreat.extensions import db
from tests.conftest import TEST_DATABASE_URL, base_config, is_postgres

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not is_postgres(), reason="rolling-upgrade DDL is checked on PostgreSQL"),
]

DB_NAME = "retreat_produp_upg"


@pytest.fixture()
def upg_url():
    url = make_url(TEST_DATABASE_URL)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    try:
        yield url.set(database=DB_NAME).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


OLD = User.__table__  # the previous release's table definition: the models as they are today


def _old_release_queries(conn, email: str) -> dict:
    """What the previous release does with users: insert an account, read it back by email."""
    conn.execute(insert(OLD).values(email=email, name="Old Release", tz="UTC"))
    row = conn.execute(select(OLD).where(OLD.c.email == email)).mappings().one()
    return dict(row)


def _backfill_nicknames(conn, batch: int) -> int:
    """Fill users.nickname from name in small batches (each its own statement), as a release would."""
    batches = 0
    while True:
        done = conn.execute(
            text(
                "UPDATE users SET nickname = name WHERE id IN "
                "(SELECT id FROM users WHERE nickname IS NULL ORDER BY id LIMIT :n)"
            ),
            {"n": batch},
        ).rowcount
        if not done:
            return batches
        batches += 1


def test_expand_keeps_the_previous_release_working_and_contract_removes_it(upg_url):
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=upg_url))
    with app.app_context():
        upgrade()
        engine = db.engine

        # The table as it is before the expand, reflected from the migrated database: the
        # previous release's model describes exactly these columns.
        before = Table("users", MetaData(), autoload_with=engine)
        assert {c.name for c in before.columns} == {c.name for c in OLD.columns}

        with engine.begin() as conn:
            for i in range(5):
                _old_release_queries(conn, f"seed{i}@example.org")

        # --- expand: an additive migration, applied while old instances still serve -------------
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE users ADD COLUMN nickname text NULL"))
        with engine.begin() as conn:
            assert _backfill_nicknames(conn, batch=2) == 3  # 5 rows, 2 at a time
            assert conn.execute(text("SELECT count(*) FROM users WHERE nickname IS NULL")).scalar_one() == 0

        # The previous release (not restarted yet) still inserts and reads users.
        with engine.begin() as conn:
            row = _old_release_queries(conn, "during-expand@example.org")
            assert row["name"] == "Old Release" and "nickname" not in row
            # ... and its reflection-era definition reads every row, old and new.
            assert conn.execute(select(func.count()).select_from(before)).scalar_one() == 6

        # The new release, on the same schema, writes and reads the new column (dual-write).
        new = OLD.to_metadata(MetaData())
        new.append_column(Column("nickname", Text))
        with engine.begin() as conn:
            conn.execute(
                insert(new).values(email="new@example.org", name="New Release", nickname="Newbie", tz="UTC")
            )
            got = conn.execute(select(new.c.nickname).where(new.c.email == "new@example.org")).scalar_one()
            assert got == "Newbie"
            # A row the old release wrote after the backfill has no nickname; the new release
            # must read it with a fallback until a later backfill fills it.
            fallback = conn.execute(
                select(func.coalesce(new.c.nickname, new.c.name)).where(new.c.email == "during-expand@example.org")
            ).scalar_one()
            assert fallback == "Old Release"

        # --- non-expand changes break the previous release at once (rolled back) --------------
        with engine.connect() as conn:
            trans = conn.begin()
            conn.execute(text("ALTER TABLE users ADD COLUMN pronouns text NOT NULL DEFAULT ''"))
            conn.execute(text("ALTER TABLE users ALTER COLUMN pronouns DROP DEFAULT"))
            with pytest.raises(IntegrityError, match="pronouns"), conn.begin_nested():
                _old_release_queries(conn, "not-null@example.org")
            trans.rollback()
        with engine.connect() as conn:
            trans = conn.begin()
            conn.execute(text("ALTER TABLE users RENAME COLUMN phone TO phone_number"))
            with pytest.raises(ProgrammingError, match="phone"), conn.begin_nested():
                conn.execute(select(OLD).where(OLD.c.email == "seed0@example.org")).all()
            with pytest.raises(ProgrammingError, match="phone"), conn.begin_nested():
                _old_release_queries(conn, "renamed@example.org")
            trans.rollback()

        # --- contract: the next release drops what no running release reads any more ----------
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE users DROP COLUMN nickname"))
        after = Table("users", MetaData(), autoload_with=engine)
        assert {c.name for c in after.columns} == {c.name for c in before.columns}
        with engine.begin() as conn:
            row = _old_release_queries(conn, "after-contract@example.org")
            assert row["email"] == "after-contract@example.org"
            assert conn.execute(select(func.count()).select_from(OLD)).scalar_one() == 8
            # The new release's column is gone: code still reading it would fail, hence contract
            # only after every instance runs a release that stopped reading it.
            with pytest.raises(ProgrammingError, match="nickname"), conn.begin_nested():
                conn.execute(select(new.c.nickname)).all()
        engine.dispose()
