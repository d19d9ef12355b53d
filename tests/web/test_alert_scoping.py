"""Alerts belong to the cohort's facilitators: another cohort's facilitator neither sees them in any
list nor opens them (404), and is not emailed; the cohort's own facilitator sees and acknowledges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.clinical import safety
from retreat.clinical.models import SafetyAlert
from retreat.integration import followups
from retreat.integration.followup_models import IntegrationAlert
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc
from tests import followup_helpers as fh
from tests.conftest import signed_in


@pytest.fixture()
def two(db):
    end = now_utc().replace(microsecond=0) - timedelta(hours=26)
    a, b = fh.setup(dosing_end=end), fh.setup(dosing_end=end)
    enr = fh.confirmed(a, name="Avery Alerted")
    fh.confirmed(b, name="Blake Calm")
    safety_alert = safety.raise_safety_alert(enr, now=now_utc())
    [integration_alert] = followups.raise_alerts(enr, fh.followups_of(enr)["checkin_24h"], ["reach_out"],
                                                 now=now_utc())
    db.session.commit()
    return a, b, safety_alert, integration_alert


def test_emails_go_to_the_cohorts_own_facilitator_only(db, two):
    a, b, _, _ = two
    for template in ("safety_alert", "integration_alert"):
        users = {m.recipient_user_id for m in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == template))}
        assert a.facilitator.id in users and b.facilitator.id not in users


def test_another_cohorts_facilitator_sees_no_alert_and_gets_404(app, db, two):
    a, b, sa, ia = two
    other = signed_in(app, b.facilitator)
    for url in ("/facilitator/safety-alerts", "/facilitator/"):
        page = other.get(url).get_data(as_text=True)
        assert "Avery Alerted" not in page
    assert other.post(f"/facilitator/safety-alerts/{sa.id}/acknowledge").status_code == 404
    assert other.post(f"/facilitator/integration-alerts/{ia.id}/acknowledge").status_code == 404
    db.session.expire_all()
    assert db.session.get(SafetyAlert, sa.id).status == "open"
    assert db.session.get(IntegrationAlert, ia.id).acknowledged_at is None


def test_the_cohorts_facilitator_sees_and_acknowledges_both(app, db, two):
    a, _, sa, ia = two
    own = signed_in(app, a.facilitator)
    assert "Avery Alerted" in own.get("/facilitator/safety-alerts").get_data(as_text=True)
    assert "Avery Alerted" in own.get("/facilitator/").get_data(as_text=True)
    assert own.post(f"/facilitator/safety-alerts/{sa.id}/acknowledge").status_code == 302
    assert own.post(f"/facilitator/integration-alerts/{ia.id}/acknowledge").status_code == 303
    db.session.expire_all()
    assert db.session.get(SafetyAlert, sa.id).status == "acknowledged"
    assert db.session.get(IntegrationAlert, ia.id).acknowledged_by_id == a.facilitator.id


def test_an_escalated_alert_says_so_on_the_page(app, db, two):
    a, _, sa, _ = two
    sa.escalated_at = now_utc()
    db.session.commit()
    page = signed_in(app, a.facilitator).get("/facilitator/safety-alerts").get_data(as_text=True)
    assert "escalated" in page and "to the provider organisation and the practice contact" in page
