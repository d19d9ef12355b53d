"""Real threads on PostgreSQL: two scheduler processes escalating at the same moment escalate every
overdue alert exactly once (one audit event, one email per recipient)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.clinical import safety
from retreat.clinical.models import SafetyAlert
from retreat.extensions import db as _db
from retreat.integration import escalation
from retreat.models import OutboxMessage
from tests import factories
from tests import factories_clearance as fcl
from tests.conftest import is_postgres
from tests.factories_cohorts import NOW

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
ALERTS = 12


def test_two_schedulers_escalate_each_alert_exactly_once(committing_app):
    app = committing_app
    with app.app_context():
        s = fcl.setup(now=NOW)
        s.org.contact_email = "oncall@clinic.example"
        escalation.save_settings(hours=4, contact_email="safety@practice.example",
                                 actor=factories.user("admin", password=None))
        safety.raise_safety_alert(s.enrollment, now=NOW)
        for _ in range(ALERTS - 1):
            safety.raise_safety_alert(fcl.another_applicant(s), now=NOW)
        _db.session.commit()
    barrier = threading.Barrier(2)
    counts: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(i):
        with app.app_context():
            try:
                barrier.wait()
                counts[i] = escalation.escalate_overdue(NOW + timedelta(hours=5))
                _db.session.commit()
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)
                _db.session.rollback()
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and sum(counts.values()) == ALERTS
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(SafetyAlert)
                                  .where(SafetyAlert.escalated_at.is_not(None))) == ALERTS
        events = Counter(_db.session.scalars(select(AuditEvent.object_id)
                                             .where(AuditEvent.action == "safety.alert_escalated")))
        assert len(events) == ALERTS and set(events.values()) == {1}
        assert _db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                  .where(OutboxMessage.template == "alert_escalated")) == 2 * ALERTS
