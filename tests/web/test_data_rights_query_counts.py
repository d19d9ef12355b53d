"""The export page and the admin's deletion-request page cost the same number of SQL statements
whatever the number of payments, consults, messages, sessions and journal entries the person has
(no query per row)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from retreat.consults.models import Consultation
from retreat.core.crypto import encrypt_field
from retreat.extensions import db as _db
from retreat.integration.journal_models import JournalEntry
from retreat.messaging import outbox
from retreat.privacy import deletion
from retreat.privacy.models import DeletionRequest
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests import finance_helpers as fh
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


def _person(rows: int):
    now = now_utc()
    c = fh.cohort(starts_at=now - timedelta(days=60))
    enr = fh.seated(c, at=now - timedelta(days=90))
    person = enr.participant
    for i in range(rows):
        fh.pay(enr, 1000 + i, at=now - timedelta(days=80 - i))
        fac = factories.user("facilitator", password=None)
        start = now - timedelta(days=100 + i)
        _db.session.add(Consultation(
            calendar_uid=secrets.token_hex(8), facilitator_id=fac.id, participant_id=person.id, start_at=start,
            end_at=start + timedelta(minutes=30), blocked_start=start, blocked_end=start + timedelta(minutes=30),
            status="completed", guest_name=person.name, guest_email=person.email))
        _db.session.add(JournalEntry(participant_id=person.id, enrollment_id=enr.id, realm="emotions",
                                     text_enc=encrypt_field(f"entry {i}")))
        outbox.enqueue(template="password_changed", dedupe_key=f"pw-{person.id}-{i}", to_user=person, now=now,
                       context={"name": person.name})
    _db.session.flush()
    fc.new_request()
    req = deletion.request_deletion(person, reason="please", now=now).request
    _db.session.commit()
    return person, req


def _measure(app, person, req: DeletionRequest) -> tuple[int, int]:
    mine = signed_in(app, person)
    admin = signed_in(app, factories.user("admin", password=None))
    _db.session.commit()
    mine.get("/me")
    admin.get("/admin/")
    with counting() as export_statements:
        assert mine.get("/me/data/export.html").status_code == 200
    with counting() as admin_statements:
        assert admin.get(f"/admin/deletion-requests/{req.id}").status_code == 200
    return len(export_statements), len(admin_statements)


def test_statements_do_not_grow_with_the_persons_rows(app, db):
    small = _measure(app, *_person(1))
    large = _measure(app, *_person(6))
    print(f"\nexport page / admin deletion page statements: 1 row each {small}, 6 rows each {large}")
    assert large == small
    assert small[0] <= 60 and small[1] <= 45
