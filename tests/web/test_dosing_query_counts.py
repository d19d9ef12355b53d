"""The dosing board costs the same number of SQL statements for 3 and for 12 people, each with
entries (no query per person; one audit event per record read, inserted together)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from retreat.clinical import staffing
from retreat.clinical.dosing_models import DosingEntry, DosingRecord
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.core.crypto import encrypt_field
from retreat.extensions import db as _db
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.unit.test_dosing_staffing import _clinician
from tests.web.test_finance_query_counts import counting


def _board(n: int):
    now = now_utc()
    org = factories.provider_org()
    md = _clinician(org)
    c = fc.cohort(fc.retreat(region="CO"), capacity=n + 1, provider_organization_id=org.id,
                  starts_at=now + timedelta(days=3))
    s = CohortSession(cohort=c, kind=SessionKind.DOSING, title="Dosing", starts_at=c.starts_at + timedelta(days=1),
                      ends_at=c.starts_at + timedelta(days=1, hours=4))
    _db.session.add(s)
    _db.session.flush()
    staffing.assign(s, md, actor=md)
    for i in range(n):
        e = fc.bare_enrollment(c, now=now)
        e.seat, e.status = "confirmed", "deposit_paid"
        rec = DosingRecord(session_id=s.id, enrollment_id=e.id, state="in_session", version=3,
                           next_check_due_at=now + timedelta(minutes=10))
        _db.session.add(rec)
        _db.session.flush()
        for kind in ("check_in", "check"):
            _db.session.add(DosingEntry(record_id=rec.id, kind=kind, idempotency_key=str(uuid.uuid4()),
                                        body_enc=encrypt_field(json.dumps({"observation": f"calm {i}"})),
                                        actor_id=md.id, at=now, recorded_at=now, version_after=2))
    c.seats_taken = n
    _db.session.commit()
    return md, s


def _count(app, md, s) -> int:
    client = signed_in(app, md)
    client.get(f"/provider/dosing/{s.id}")  # warm the session and caches
    with counting() as statements:
        r = client.get(f"/provider/dosing/{s.id}")
        assert r.status_code == 200
    return len(statements), r.get_data(as_text=True)


def test_board_statements_do_not_grow_with_people(app, db):
    small, small_page = _count(app, *_board(3))
    large, large_page = _count(app, *_board(12))
    assert large_page.count('class="person card') == 12 and "calm 11" in large_page
    assert large == small, (small, large)
    assert small <= 30
    print(f"dosing board: {small} statements for 3 and for 12 people")
