"""The README's backup and restore, for real on PostgreSQL: the backup script reads the app's
environment file (as cron runs it), writes a 0600 dump and a 0600 uploads archive; the dump is
restored into a fresh database as the app's own non-superuser role (the README's steps), and the
app pointed at the restored copy decrypts a clinical field with the same CLINICAL_DATA_KEYS."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from retreat import create_app
from tests.conftest import TEST_DATABASE_URL, base_config

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DB = "retreat_prodkeys_bsrc"
RESTORED_DB = "retreat_prodkeys_brestored"
APP_ROLE = "retreat_prodkeys_app"

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL.startswith("postgresql") or shutil.which("tar") is None,
                                reason="needs PostgreSQL (TEST_DATABASE_URL)")


def server_url(dbname: str, user: str | None = None) -> str:
    base = TEST_DATABASE_URL.rsplit("/", 1)[0]
    if user:
        scheme, rest = base.split("://", 1)
        rest = rest.split("@", 1)[-1]
        base = f"{scheme}://{user}@{rest}"
    return f"{base}/{dbname}"


def admin_sql(*statements: str) -> None:
    engine = create_engine(server_url("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def drop_all() -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {RESTORED_DB} WITH (FORCE)", f"DROP DATABASE IF EXISTS {SOURCE_DB} WITH (FORCE)",
              f"DROP ROLE IF EXISTS {APP_ROLE}")


@pytest.fixture
def databases():
    drop_all()
    admin_sql(f"CREATE DATABASE {SOURCE_DB}")
    yield
    drop_all()


def test_backup_then_restore_as_the_app_role_decrypts_clinical_fields(databases, tmp_path):
    from retreat.core.crypto import decrypt_field, encrypt_field
    from retreat.extensions import db
    from retreat.integration.journal_models import JournalEntry, JournalRealm
    from tests import factories

    keys = base_config()["CLINICAL_DATA_KEYS"]
    source = create_app(base_config(SQLALCHEMY_DATABASE_URI=server_url(SOURCE_DB)))
    with source.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        db.create_all()
        person = factories.user("participant")
        db.session.add(JournalEntry(participant=person, realm=JournalRealm.MIND, text_enc=encrypt_field("felt the river")))
        db.session.commit()
        stored = db.session.scalar(select(JournalEntry.text_enc))
        assert "river" not in stored
        db.engine.dispose()

    uploads = tmp_path / "uploads"
    (uploads / "guides").mkdir(parents=True)
    (uploads / "guides" / "program.pdf").write_bytes(b"%PDF-1.4 guide")
    env_file = tmp_path / "env"
    env_file.write_text(f"RETREAT_ENV=production\nDATABASE_URL={server_url(SOURCE_DB)}\nUPLOAD_DIR=\"{uploads}\"\n")
    backups = tmp_path / "backups"
    clean_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "UPLOAD_DIR", "RETREAT_ENV_FILE"}}
    result = subprocess.run([str(ROOT / "scripts" / "backup.sh"), "--env-file", str(env_file), str(backups)],
                            env=clean_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    dump = next(backups.glob(f"{SOURCE_DB}-*.dump"))
    archive = next(backups.glob(f"{SOURCE_DB}-*.uploads.tar.gz"))
    for path in (dump, archive):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The README's restore: a database owned by the app's role, restored as that role.
    admin_sql(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB", f"CREATE DATABASE {RESTORED_DB} OWNER {APP_ROLE}")
    restore = subprocess.run(["pg_restore", "--exit-on-error", "--no-owner", "--no-privileges",
                              "--dbname", server_url(RESTORED_DB, APP_ROLE).replace("+psycopg", ""), str(dump)],
                             capture_output=True, text=True, timeout=300)
    assert restore.returncode == 0, restore.stderr
    restored_uploads = tmp_path / "restored-uploads"
    restored_uploads.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(restored_uploads)], check=True)
    assert (restored_uploads / "guides" / "program.pdf").read_bytes() == b"%PDF-1.4 guide"

    restored = create_app(base_config(SQLALCHEMY_DATABASE_URI=server_url(RESTORED_DB, APP_ROLE),
                                      CLINICAL_DATA_KEYS=keys))
    with restored.app_context():
        entry = db.session.scalar(select(JournalEntry))
        assert decrypt_field(entry.text_enc) == "felt the river"
        entry.text_enc = encrypt_field("and wrote more")  # the app's role owns the tables: it writes too
        db.session.commit()
        owners = set(db.session.scalars(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")))
        assert owners == {APP_ROLE}
        db.session.remove()
        db.engine.dispose()
