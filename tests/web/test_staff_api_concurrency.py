"""Two cancels of one consult through the API at the same moment (a retried request, two scripts)
cancel it once: one audit event, one cancellation email. Real threads against PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from retreat.accounts import api_tokens
from retreat.extensions import db
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests.conftest import is_postgres
from tests.unit.test_consult_support import around_the_clock_facilitator, book

pytestmark = pytest.mark.skipif(not is_postgres(), reason="row locks need PostgreSQL")


def test_two_cancels_at_once_cancel_once(committing_app):
    app = committing_app
    with app.app_context():
        fac = around_the_clock_facilitator()
        now = now_utc()
        consult = book(datetime.combine((now + timedelta(days=5)).date(), time(15), UTC), now=now,
                       facilitator_id=fac.id).consult
        _t, raw = api_tokens.create_token(fac, name="t")
        db.session.commit()
        consult_id = consult.id
    start = threading.Barrier(2)
    answers: list[int] = []

    def cancel():
        client = app.test_client()
        start.wait()
        answers.append(client.post(f"/api/v1/consultations/{consult_id}/cancel",
                                   headers={"Authorization": f"Bearer {raw}"}).status_code)

    threads = [threading.Thread(target=cancel) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == [200, 200]
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "consult.cancelled", AuditEvent.object_id == str(consult_id)))
        assert events == 1
