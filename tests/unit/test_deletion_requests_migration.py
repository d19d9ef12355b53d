"""Migration 0024dr: deletion requests made before the table existed (audit events only) become one
open request per participant, so that the admins' list shows them."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from retreat import create_app
from retreat.extensions import db
from tests.conftest import base_config
from tests.unit.test_migrations import scratch_url  # noqa: F401 - the fixture

USER = ("INSERT INTO users (id, email, name, role, tz, is_active, session_version, marketing_opt_out, "
        "created_at, updated_at) VALUES (:id, :email, 'P', 'participant', 'UTC', :t, 1, :f, :at, :at)")
EVENT = "INSERT INTO audit_events (at, action, object_type, object_id) VALUES (:at, :action, 'user', :oid)"


def test_past_requests_become_open_requests_and_downgrade_drops_them(scratch_url):  # noqa: F811
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=scratch_url))
    with app.app_context():
        upgrade(revision="0023")
        with db.engine.begin() as conn:
            for uid in (7, 8):
                conn.execute(text(USER), {"id": uid, "email": f"p{uid}@example.com", "t": True, "f": False,
                                          "at": "2026-01-01 00:00:00+00:00"})
            for at, oid in (("2026-01-02 10:00:00+00:00", "7"), ("2026-01-05 10:00:00+00:00", "7"),
                            ("2026-01-03 10:00:00+00:00", "999")):  # 999: no such user any more
                conn.execute(text(EVENT), {"at": at, "action": "privacy.deletion_requested", "oid": oid})
            conn.execute(text(EVENT), {"at": "2026-01-04 10:00:00+00:00", "action": "privacy.exported", "oid": "8"})
        upgrade(revision="0024dr")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT participant_id, status, times_requested, reason_enc "
                                     "FROM deletion_requests")).all()
        assert [tuple(r) for r in rows] == [(7, "open", 2, None)]
        downgrade(revision="0023")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 4
        db.engine.dispose()
