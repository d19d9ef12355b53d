"""Alerts nobody acknowledged in time are escalated once to the provider organisation's contact and
the practice's contact: through the outbox, without clinical details, audited, shown on the alert;
the practice's settings refuse bad input and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import render_template
from sqlalchemy import select

from retreat import scheduler
from retreat.accounts import users as accounts
from retreat.audit.models import AuditEvent
from retreat.clinical import safety
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.integration import escalation, followups
from retreat.models import OutboxMessage
from tests import factories
from tests import factories_clearance as fcl
from tests import followup_helpers as fh
from tests.factories_cohorts import NOW

CONTACT = "safety@practice.example"


@pytest.fixture()
def s(db):
    s = fcl.setup(now=NOW)
    s.org.contact_email = "oncall@clinic.example"
    admin = factories.user("admin", password=None)
    escalation.save_settings(hours=4, contact_email=CONTACT, actor=admin)
    return s


def mails(template="alert_escalated"):
    return list(_db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == template)
                                    .order_by(OutboxMessage.id)))


def audits(action):
    return list(_db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def rendered(msg) -> str:
    ctx = dict(msg.context, practice_name="Practice", subject="s")
    return render_template("emails/alert_escalated.txt", **ctx) + render_template("emails/alert_escalated.html", **ctx)


def test_an_open_safety_alert_is_escalated_once_after_the_set_time(s):
    alert = safety.raise_safety_alert(s.enrollment, now=NOW)
    job = scheduler.registered_jobs()["safety.escalate_unacknowledged"]
    assert job.func(NOW + timedelta(hours=3, minutes=59)) == 0 and mails() == []
    assert job.func(NOW + timedelta(hours=4)) == 1
    assert alert.escalated_at == NOW + timedelta(hours=4)
    sent = mails()
    assert sorted(m.recipient_email for m in sent) == sorted(["oncall@clinic.example", CONTACT])
    for msg in sent:
        body = rendered(msg)
        assert "has not been acknowledged for 4 hours" in body and s.cohort.title in body
        assert s.participant.name not in body and s.participant.email not in body and msg.essential
    [event] = audits("safety.alert_escalated")
    assert event.object_id == str(alert.id) and event.details["recipients"] == 2
    assert job.func(NOW + timedelta(hours=9)) == 0 and len(mails()) == 2  # once


def test_an_acknowledged_alert_is_never_escalated_and_the_setting_changes_the_wait(s):
    alert = safety.raise_safety_alert(s.enrollment, now=NOW)
    safety.acknowledge_alert(alert, s.provider, now=NOW + timedelta(hours=1))
    assert escalation.escalate_overdue(NOW + timedelta(hours=8)) == 0
    other = fcl.another_applicant(s)
    alert2 = safety.raise_safety_alert(other, now=NOW)
    escalation.save_settings(hours=1, contact_email="", actor=s.provider)
    assert escalation.escalate_overdue(NOW + timedelta(minutes=59)) == 0
    assert escalation.escalate_overdue(NOW + timedelta(hours=1)) == 1
    assert alert.escalated_at is None and alert2.escalated_at is not None
    assert [m.recipient_email for m in mails()] == ["oncall@clinic.example"]  # no practice contact set


def test_an_organisation_without_a_contact_email_escalates_to_its_providers(s):
    s.org.contact_email = None
    safety.raise_safety_alert(s.enrollment, now=NOW)
    escalation.escalate_overdue(NOW + timedelta(hours=5))
    assert sorted(m.recipient_email for m in mails()) == sorted([s.provider.email, CONTACT])


def test_an_unacknowledged_integration_alert_is_escalated_once(db):
    org = factories.provider_org()
    org.contact_email = "oncall@clinic.example"
    escalation.save_settings(hours=4, contact_email=CONTACT, actor=factories.user("admin", password=None))
    setup = fh.setup(provider_organization_id=org.id)
    enr = fh.confirmed(setup)
    f = fh.followups_of(enr)["checkin_24h"]
    at = fh.DUE["checkin_24h"]
    [alert] = followups.raise_alerts(enr, f, ["reach_out"], now=at)
    [acked] = followups.raise_alerts(enr, f, ["low_score"], now=at)
    followups.acknowledge(acked.id, setup.facilitator, now=at + timedelta(hours=1))
    assert escalation.escalate_overdue(at + timedelta(hours=3)) == 0
    assert escalation.escalate_overdue(at + timedelta(hours=4, minutes=1)) == 1
    assert alert.escalated_at is not None and acked.escalated_at is None
    assert sorted(m.recipient_email for m in mails()) == sorted(["oncall@clinic.example", CONTACT])
    assert "integration follow-up alert" in rendered(mails()[0])
    assert len(audits("integration.alert_escalated")) == 1
    assert escalation.escalate_overdue(at + timedelta(days=1)) == 0


@pytest.mark.parametrize("hours,email,field", [
    (0, "", "escalate_after_hours"), (73, "", "escalate_after_hours"), (None, "", "escalate_after_hours"),
    (4, "not-an-email", "practice_contact_email"), (4, "a@" + "b" * 260 + ".org", "practice_contact_email"),
])
def test_bad_settings_are_refused_by_field_and_change_nothing(db, hours, email, field):
    admin = factories.user("admin", password=None)
    with pytest.raises(ValidationFailed) as exc:
        escalation.save_settings(hours=hours, contact_email=email, actor=admin)
    assert list(exc.value.errors) == [field]
    assert accounts.get_setting(escalation.AFTER_HOURS_KEY) is None and escalation.after_hours() == 4
    assert escalation.practice_contact() == ""


def test_an_alert_with_nobody_to_tell_waits_for_a_practice_contact(db):
    admin = factories.user("admin", password=None)
    escalation.save_settings(hours=4, contact_email="", actor=admin)
    setup = fh.setup()  # no provider organisation
    enr = fh.confirmed(setup)
    at = fh.DUE["checkin_24h"]
    [alert] = followups.raise_alerts(enr, fh.followups_of(enr)["checkin_24h"], ["reach_out"], now=at)
    assert escalation.escalate_overdue(at + timedelta(hours=5)) == 0
    assert alert.escalated_at is None and mails() == [] and audits("integration.alert_escalated") == []
    escalation.save_settings(hours=4, contact_email=CONTACT, actor=admin)
    assert escalation.escalate_overdue(at + timedelta(hours=6)) == 1
    assert alert.escalated_at == at + timedelta(hours=6) and [m.recipient_email for m in mails()] == [CONTACT]


def test_a_long_wait_is_told_in_days(s):
    safety.raise_safety_alert(s.enrollment, now=NOW)
    escalation.escalate_overdue(NOW + timedelta(days=3, hours=5))
    assert "has not been acknowledged for 3 days" in rendered(mails()[0])
