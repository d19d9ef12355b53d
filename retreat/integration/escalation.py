"""Alerts nobody acknowledged in time go further: to the provider organisation and the practice.

Scheduler job ``safety.escalate_unacknowledged`` (``escalate_overdue``): a safety alert
(``clinical.safety``) still open, or an integration alert (``integration.followups``) still
unacknowledged, ``escalate_after_hours`` (a practice setting, default 4) after it was raised is
escalated exactly once:

* ``escalated_at`` is set on the alert (shown beside it), under a ``FOR UPDATE SKIP LOCKED`` claim so
  that two scheduler processes never both take it (the outbox dedupe key backs this up);
* one email per recipient through the outbox, in the same transaction: the organisation's
  contact email (its active providers when it has none) and the practice's contact (a setting);
  the email names the kind of alert, the cohort and how long it has waited, never who or why;
* an audit event ``safety.alert_escalated`` / ``integration.alert_escalated``.

An alert with nobody to tell (no organisation contact and no practice contact) is not marked: it
waits, and is escalated as soon as the admin sets the practice contact (the settings page warns
while it is empty).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import ProviderOrganization, User
from retreat.clinical.models import AlertStatus, SafetyAlert
from retreat.cohorts.models import Cohort
from retreat.core import jobs, locking, urls
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.integration.followup_models import IntegrationAlert
from retreat.messaging import outbox
from retreat.timeutil import ensure_utc

AFTER_HOURS_KEY = "safety_escalate_after_hours"
CONTACT_KEY = "practice_safety_contact_email"
DEFAULT_AFTER_HOURS = 4
MIN_AFTER_HOURS, MAX_AFTER_HOURS = 1, 72
BATCH = 200
TEMPLATE = "alert_escalated"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --------------------------------------------------------------------------------------------
# The practice's settings (admin screen: /admin/settings)
# --------------------------------------------------------------------------------------------


def after_hours() -> int:
    raw = accounts.get_setting(AFTER_HOURS_KEY)
    return int(raw) if raw and raw.isdigit() and MIN_AFTER_HOURS <= int(raw) <= MAX_AFTER_HOURS else DEFAULT_AFTER_HOURS


def practice_contact() -> str:
    return accounts.get_setting(CONTACT_KEY) or ""


def save_settings(*, hours: int | None, contact_email: str, actor: User, ctx: RequestContext | None = None) -> None:
    """Both settings at once, or ``ValidationFailed`` naming the field (nothing saved)."""
    email = (contact_email or "").strip().lower()
    if hours is None or not MIN_AFTER_HOURS <= hours <= MAX_AFTER_HOURS:
        raise ValidationFailed(f"Escalate after a whole number of hours from {MIN_AFTER_HOURS} to {MAX_AFTER_HOURS}.",
                               field="escalate_after_hours")
    if email and (len(email) > 254 or not _EMAIL_RE.match(email)):
        raise ValidationFailed("Enter the practice contact as an email address, like safety@example.org.",
                               field="practice_contact_email")
    accounts.set_setting(AFTER_HOURS_KEY, str(hours), actor=actor, ctx=ctx)
    accounts.set_setting(CONTACT_KEY, email, actor=actor, ctx=ctx)


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def _org_contacts(org_id: int | None) -> list[User | str]:
    if org_id is None:
        return []
    org = db.session.get(ProviderOrganization, org_id)
    if org is not None and org.contact_email:
        return [org.contact_email]
    return accounts.provider_contacts(org_id)


def _send(kind: str, alert_id: int, recipients: Iterable[tuple[User | str, str]], *, cohort_title: str,
          waited_hours: int, now: datetime) -> int:
    sent, seen = 0, set()
    for recipient, page in recipients:
        email = (recipient.email if isinstance(recipient, User) else recipient).strip().lower()
        if not email or email in seen:
            continue
        seen.add(email)
        user = recipient if isinstance(recipient, User) else None
        outbox.enqueue(template=TEMPLATE, dedupe_key=f"escalation-{kind}-{alert_id}-{email}"[:200],
                       to_user=user, to_email=None if user else email, essential=True, now=now,
                       group_key=f"escalation-{kind}-{alert_id}",
                       context={"alert_kind": kind, "cohort_title": cohort_title, "waited_hours": waited_hours,
                                "recipient_name": user.name if user else "", "url": urls.absolute(page)})
        sent += 1
    return sent


def _waited(raised_at: datetime, now: datetime) -> int:
    return max(int((now - ensure_utc(raised_at)).total_seconds() // 3600), 0)


def _escalate_safety(cutoff: datetime, now: datetime, contact: str) -> int:
    stmt = select(SafetyAlert).where(SafetyAlert.status == AlertStatus.OPEN.value, SafetyAlert.escalated_at.is_(None),
                                     SafetyAlert.raised_at <= cutoff)
    if not contact:
        stmt = stmt.where(SafetyAlert.organization_id.is_not(None))
    alerts = db.session.scalars(locking.claim(stmt.order_by(SafetyAlert.id).limit(BATCH))).all()
    done = 0
    for alert in alerts:
        cohort = db.session.get(Cohort, alert.cohort_id) if alert.cohort_id else None
        recipients = [(r, "/provider/") for r in _org_contacts(alert.organization_id)]
        if contact:
            recipients.append((contact, "/facilitator/safety-alerts"))
        if not recipients:
            continue  # nobody to tell yet: it waits for a contact
        alert.escalated_at, alert.updated_at = now, now
        done += 1
        n = _send("safety", alert.id, recipients, cohort_title=cohort.title if cohort else "",
                  waited_hours=_waited(alert.raised_at, now), now=now)
        audit.record("safety.alert_escalated", object_type="safety_alert", object_id=alert.id,
                     details={"recipients": n, "highlight": True}, now=now)
    return done


def _escalate_integration(cutoff: datetime, now: datetime, contact: str) -> int:
    stmt = select(IntegrationAlert).where(IntegrationAlert.acknowledged_at.is_(None),
                                          IntegrationAlert.escalated_at.is_(None), IntegrationAlert.created_at <= cutoff)
    if not contact:
        stmt = stmt.where(IntegrationAlert.cohort_id.in_(
            select(Cohort.id).where(Cohort.provider_organization_id.is_not(None))))
    alerts = db.session.scalars(locking.claim(stmt.order_by(IntegrationAlert.id).limit(BATCH),
                                              of=IntegrationAlert)).all()
    done = 0
    for alert in alerts:
        cohort = db.session.get(Cohort, alert.cohort_id)
        recipients = [(r, "/provider/") for r in _org_contacts(cohort.provider_organization_id)]
        if contact:
            recipients.append((contact, "/facilitator/#integration-alerts"))
        if not recipients:
            continue  # nobody to tell yet: it waits for a contact
        alert.escalated_at, alert.updated_at = now, now
        done += 1
        n = _send("integration", alert.id, recipients, cohort_title=cohort.title,
                  waited_hours=_waited(alert.created_at, now), now=now)
        audit.record("integration.alert_escalated", object_type="integration_alert", object_id=alert.id,
                     details={"recipients": n, "highlight": True}, now=now)
    return done


def escalate_overdue(now: datetime) -> int:
    """Escalate every alert unacknowledged for longer than the setting; returns how many."""
    cutoff = now - timedelta(hours=after_hours())
    contact = practice_contact()
    return _escalate_safety(cutoff, now, contact) + _escalate_integration(cutoff, now, contact)


jobs.register("safety.escalate_unacknowledged", escalate_overdue, seconds=300)
