"""The database itself refuses overlapping consults of one facilitator (PostgreSQL exclusion constraint)."""

import importlib.util
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from retreat.consults.models import NO_OVERLAP_CONSTRAINT, NO_OVERLAP_DDL
from tests import factories
from tests.conftest import is_postgres

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
T0 = datetime(2026, 6, 2, 16, 0, tzinfo=UTC)
_uids = itertools.count(1)


def test_migration_creates_the_same_constraint_as_create_all():
    path = next(MIGRATIONS.glob("*_0003_consults.py"))
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NO_OVERLAP_DDL == NO_OVERLAP_DDL


def _insert(db, facilitator_id, start, minutes=30, buffer_after=10, status="booked"):
    db.session.execute(text(
        "INSERT INTO consultations (calendar_uid, facilitator_id, start_at, end_at, blocked_start, blocked_end, "
        "status, sequence, booked_via, guest_name, guest_email, guest_tz, flagged, created_at, updated_at) VALUES "
        "(:uid, :f, :s, :e, :s, :be, :status, 0, 'web', 'G', 'g@example.com', 'UTC', false, :s, :s)"),
        {"uid": f"raw-{next(_uids)}", "f": facilitator_id, "s": start,
         "e": start + timedelta(minutes=minutes), "be": start + timedelta(minutes=minutes + buffer_after),
         "status": status})


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="the exclusion constraint is PostgreSQL's")
def test_overlapping_rows_are_refused_even_when_written_directly(db):
    a = factories.user("facilitator", password=None)
    b = factories.user("facilitator", password=None)
    _insert(db, a.id, T0)  # blocks 16:00-16:40
    _insert(db, a.id, T0 + timedelta(minutes=40))  # adjacent: fine
    _insert(db, b.id, T0)  # another facilitator: fine
    _insert(db, a.id, T0 + timedelta(minutes=20), status="cancelled")  # cancelled rows hold nothing
    for start in (T0 + timedelta(minutes=30), T0 - timedelta(minutes=20), T0):  # buffer overlap, call overlap
        with pytest.raises(IntegrityError, match=NO_OVERLAP_CONSTRAINT), db.session.begin_nested():
            _insert(db, a.id, start)
    # Un-cancelling a consult into an overlap is refused too.
    with pytest.raises(IntegrityError, match=NO_OVERLAP_CONSTRAINT), db.session.begin_nested():
        db.session.execute(text("UPDATE consultations SET status = 'booked' WHERE status = 'cancelled'"))
