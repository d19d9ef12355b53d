"""Safety alerts: "safety review needed", raised at once, with no details.

    an intake reports a positive PHQ-9 item 9 or active suicidal ideation (``clearance.save_draft``,
      ``clearance.submit``) -> an alert for the cohort's facilitators and its provider organisation
    a consult's pre-screen reports suicidal ideation or self-harm (``signals.consult_flagged``)
      -> an alert for that consult's facilitator
    a facilitator of that cohort (or the consult's own facilitator), or a member of the alert's
      organisation, acknowledges it (open -> acknowledged; repeating is a no-op)
    nobody acknowledges it in time -> ``retreat.integration.escalation`` tells the organisation and
      the practice's contact (``escalated_at``)

Who sees an alert is who is told about it: the cohort's team (``retreat.cohorts.team``) or the
consult's facilitator, the alert's organisation, and admins (``visible_to``). Anyone else is told
it does not exist.

One open alert per enrollment and per consult (partial unique indexes). Emails and dashboards say
only that a review is needed; the details stay behind ``retreat.clinical.access``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import Role, User
from retreat.clinical import notices
from retreat.clinical.models import AlertStatus, SafetyAlert
from retreat.cohorts import catalog, team
from retreat.cohorts.models import Cohort, Enrollment
from retreat.consults.models import Consultation
from retreat.core import locking, signals, urls
from retreat.core.context import RequestContext
from retreat.core.errors import NotFound
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db

TEMPLATE = "safety_alert"
FACILITATOR_PAGE = "/facilitator/safety-alerts"
PROVIDER_PAGE = "/provider/"


def _insert(alert: SafetyAlert) -> bool:
    """Add ``alert``; False when another open one was raised concurrently (one is enough)."""
    try:
        with db.session.begin_nested():
            db.session.add(alert)
            db.session.flush()
    except IntegrityError:
        return False
    return True


def _tell(recipients, alert: SafetyAlert, *, page: str, cohort_title: str, now: datetime) -> None:
    for recipient in recipients:
        notices.send(recipient, template=TEMPLATE, dedupe_key=f"safety-{alert.id}", group_key=None, now=now,
                     context={"cohort_title": cohort_title, "url": urls.absolute(page)})


def _raised(alert: SafetyAlert, details: dict, *, now: datetime) -> SafetyAlert:
    audit.record("safety.alert_raised", object_type="safety_alert", object_id=alert.id,
                 details={**details, "highlight": True}, now=now)
    return alert


def raise_safety_alert(enr: Enrollment, *, now: datetime, only_first: bool = False) -> SafetyAlert | None:
    """"Safety review needed" to the cohort's facilitators and the provider organisation, no details.

    ``only_first`` (draft saves): raise only if this enrollment never had an alert; a submission
    raises a new one whenever none is open.
    """
    existing = db.session.scalars(select(SafetyAlert).where(SafetyAlert.enrollment_id == enr.id)).all()
    if any(a.status == AlertStatus.OPEN for a in existing) or (only_first and existing):
        return None
    cohort = db.session.get(Cohort, enr.cohort_id)
    alert = SafetyAlert(enrollment_id=enr.id, cohort_id=cohort.id, organization_id=cohort.provider_organization_id,
                        status=AlertStatus.OPEN.value, raised_at=now, created_at=now, updated_at=now)
    if not _insert(alert):
        return None
    _tell(catalog.facilitators(cohort), alert, page=FACILITATOR_PAGE, cohort_title=cohort.title, now=now)
    if cohort.provider_organization_id is not None:
        _tell(accounts.provider_contacts(cohort.provider_organization_id), alert, page=PROVIDER_PAGE,
              cohort_title=cohort.title, now=now)
    return _raised(alert, {"enrollment_id": enr.id, "cohort_id": cohort.id}, now=now)


def raise_dosing_alert(enr: Enrollment, *, now: datetime, event_key: str) -> SafetyAlert:
    """A severe adverse event at a dosing session: "safety review needed" at once to the cohort's
    facilitators and the provider organisation, no details. An alert already open for this person is
    told again (one open alert per enrollment); ``event_key`` makes each event's message its own."""
    cohort = db.session.get(Cohort, enr.cohort_id)
    alert = open_alert_for(enr.id)
    if alert is None:
        alert = SafetyAlert(enrollment_id=enr.id, cohort_id=cohort.id, organization_id=cohort.provider_organization_id,
                            status=AlertStatus.OPEN.value, raised_at=now, created_at=now, updated_at=now)
        if not _insert(alert):
            alert = open_alert_for(enr.id)
    recipients = list(catalog.facilitators(cohort))
    if cohort.provider_organization_id is not None:
        recipients += list(accounts.provider_contacts(cohort.provider_organization_id))
    for recipient in recipients:
        page = FACILITATOR_PAGE if getattr(recipient, "role", None) == Role.FACILITATOR else PROVIDER_PAGE
        notices.send(recipient, template=TEMPLATE, dedupe_key=f"safety-dosing-{event_key}", group_key=None,
                     now=now, context={"cohort_title": cohort.title, "url": urls.absolute(page)})
    return _raised(alert, {"enrollment_id": enr.id, "cohort_id": cohort.id, "source": "dosing"}, now=now)


@signals.consult_flagged.connect(order=10)
def raise_consult_safety_alert(consult, *, now: datetime) -> SafetyAlert | None:
    """"Safety review needed" for the consult's facilitator when its pre-screen reports suicidal
    ideation or self-harm. Same alert, page and email as an intake's; no details. One open per consult."""
    if db.session.scalar(select(SafetyAlert.id).where(SafetyAlert.consultation_id == consult.id,
                                                      SafetyAlert.status == AlertStatus.OPEN.value)):
        return None
    alert = SafetyAlert(consultation_id=consult.id, status=AlertStatus.OPEN.value, raised_at=now,
                        created_at=now, updated_at=now)
    if not _insert(alert):
        return None
    facilitator = db.session.get(User, consult.facilitator_id)
    recipients = [facilitator] if facilitator is not None and facilitator.is_active else []
    _tell(recipients, alert, page=FACILITATOR_PAGE, cohort_title="", now=now)
    return _raised(alert, {"consultation_id": consult.id}, now=now)


_LOADS = (joinedload(SafetyAlert.enrollment).joinedload(Enrollment.participant), joinedload(SafetyAlert.cohort),
          joinedload(SafetyAlert.consultation), joinedload(SafetyAlert.acknowledged_by))


def visible_to(actor: User) -> ColumnElement[bool]:
    """SQL: the alerts ``actor`` may see (and is emailed about)."""
    if actor.role == Role.ADMIN:
        return true()
    if actor.role == Role.PROVIDER:
        if actor.provider_organization_id is None:
            return false()
        return SafetyAlert.organization_id == actor.provider_organization_id
    if actor.role != Role.FACILITATOR:
        return false()
    own_consult = select(Consultation.id).where(Consultation.id == SafetyAlert.consultation_id,
                                                Consultation.facilitator_id == actor.id).exists()
    return or_(and_(SafetyAlert.cohort_id.is_not(None), team.on_team(actor, SafetyAlert.cohort_id)),
               and_(SafetyAlert.cohort_id.is_(None), own_consult))


def open_alerts(*, organization_id: int | None = None, viewer: User | None = None) -> list[SafetyAlert]:
    stmt = select(SafetyAlert).where(SafetyAlert.status == AlertStatus.OPEN.value)
    if organization_id is not None:
        stmt = stmt.where(SafetyAlert.organization_id == organization_id)
    if viewer is not None:
        stmt = stmt.where(visible_to(viewer))
    return list(db.session.scalars(stmt.options(*_LOADS).order_by(SafetyAlert.raised_at)))


def unacknowledged(viewer: User, *, limit: int = 5) -> Batch:
    """Open alerts ``viewer`` may see, oldest first (their home's panel)."""
    return first_of(select(SafetyAlert).where(SafetyAlert.status == AlertStatus.OPEN.value, visible_to(viewer))
                    .options(*_LOADS).order_by(SafetyAlert.raised_at, SafetyAlert.id), limit=limit)


def recent_alerts(viewer: User, *, limit: int = 50) -> list[SafetyAlert]:
    """The newest alerts ``viewer`` may see, open and acknowledged."""
    return list(db.session.scalars(select(SafetyAlert).where(visible_to(viewer)).options(*_LOADS)
                                   .order_by(SafetyAlert.raised_at.desc(), SafetyAlert.id.desc()).limit(limit)))


def alert_for(alert_id: int, viewer: User) -> SafetyAlert:
    """The alert, or ``NotFound`` when it does not exist or is not ``viewer``'s to see."""
    alert = db.session.scalar(select(SafetyAlert).where(SafetyAlert.id == alert_id, visible_to(viewer)))
    if alert is None:
        raise NotFound("We could not find that alert.")
    return alert


def open_alert_for(enrollment_id: int) -> SafetyAlert | None:
    return db.session.scalar(select(SafetyAlert).where(SafetyAlert.enrollment_id == enrollment_id,
                                                       SafetyAlert.status == AlertStatus.OPEN.value))


def may_acknowledge(alert: SafetyAlert, actor: User) -> bool:
    """A facilitator of the alert's cohort (or the consult's facilitator); a provider only for an
    alert of their own organisation."""
    if actor.role == Role.FACILITATOR:
        return bool(db.session.scalar(select(SafetyAlert.id).where(SafetyAlert.id == alert.id,
                                                                   visible_to(actor))))
    return (actor.role == Role.PROVIDER and alert.organization_id is not None
            and actor.provider_organization_id == alert.organization_id)


def _mark_acknowledged(alert: SafetyAlert, *, by: User, now: datetime) -> None:
    alert.status = AlertStatus.ACKNOWLEDGED.value
    alert.acknowledged_by_id = by.id
    alert.acknowledged_at = now
    alert.updated_at = now


def acknowledge_alert(alert: SafetyAlert, actor: User, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """Open -> acknowledged, under a row lock; False when it was acknowledged already (a no-op).
    Someone who may not acknowledge it is told it does not exist."""
    if not may_acknowledge(alert, actor):
        raise NotFound("We could not find that alert.")
    alert = locking.lock(SafetyAlert, alert.id)
    if alert.status != AlertStatus.OPEN:
        return False
    _mark_acknowledged(alert, by=actor, now=now)
    audit.record("safety.alert_acknowledged", actor=actor, object_type="safety_alert", object_id=alert.id,
                 ctx=ctx, now=now)
    return True
