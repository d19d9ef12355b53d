"""Follow-ups after the retreat: schedule check-ins and surveys from the integration plan, keep
them in step with it, stop them, and raise integration alerts.

* ``sync_enrollment`` / ``sync_cohort`` turn the plan's touchpoints (``integration_plan.touchpoints``)
  into ``FollowUp`` rows and queue each one's email through the outbox (dedupe key per follow-up,
  group ``enrollment:<id>``, non-essential). Idempotent: running it again changes nothing; when the
  plan moves, pending messages move with it; a touchpoint dropped from the plan is cancelled. The
  due time is moved out of the participant's quiet hours (21:00-08:00 in *their* zone, the
  dispatcher's own rule). Only confirmed seats of active enrollments get follow-ups, and nothing is
  scheduled for a participant who opted out of non-essential messages.
* Leaving the cohort (the ``enrollment_left`` signal) calls ``cancel_for_enrollment``; an opt-out made after
  scheduling is caught by the dispatcher (it cancels non-essential mail to opted-out recipients),
  and ``sweep_unanswered`` copies that outcome onto the follow-up.
* ``sweep_unanswered`` (scheduler job ``integration.sweep_unanswered``): marks follow-ups sent once
  their email went out, expires old links, and alerts the facilitators once when a 72-hour check-in
  is still unanswered 24 hours after it was sent.
* ``raise_alerts``: an ``IntegrationAlert`` per reason plus one email to the cohort's facilitators
  without any detail (essential, outbox).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.cohorts import team
from retreat.cohorts.models import EXITS, Cohort, CohortSession, Enrollment, SessionKind
from retreat.core import jobs, locking, signals, urls
from retreat.core.context import RequestContext
from retreat.core.errors import NotFound
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db
from retreat.integration import links
from retreat.integration import plan as integration_plan
from retreat.integration.followup_models import (
    CHECKIN_KINDS,
    AlertReason,
    Discharge,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    IntegrationAlert,
)
from retreat.messaging import outbox
from retreat.messaging.dispatcher import quiet_until
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.timeutil import ensure_utc

CHECKIN_OPEN_FOR = timedelta(days=7)
SURVEY_OPEN_FOR = timedelta(days=14)
NO_RESPONSE_AFTER = timedelta(hours=24)
KINDS = tuple(k.value for k in FollowUpKind)
_DELIVERED = (FollowUpStatus.SENT.value, FollowUpStatus.ANSWERED.value, FollowUpStatus.EXPIRED.value)

KIND_LABELS = {
    FollowUpKind.CHECKIN_24H.value: "24-hour check-in",
    FollowUpKind.CHECKIN_72H.value: "72-hour check-in",
    FollowUpKind.SURVEY_POST.value: "Survey right after the retreat",
    FollowUpKind.SURVEY_MONTH_1.value: "1-month survey",
    FollowUpKind.SURVEY_MONTH_3.value: "3-month survey",
}
REASON_LABELS = {
    AlertReason.REACH_OUT.value: "Asked for someone to reach out",
    AlertReason.LOW_SCORE.value: "Very low check-in score",
    AlertReason.PHQ9_ITEM9.value: "Survey safety question answered",
    AlertReason.NO_RESPONSE_72H.value: "No response to the 72-hour check-in",
}


@dataclass
class SyncResult:
    created: int = 0
    moved: int = 0
    cancelled: int = 0


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


def plan_touchpoints(cohort: Cohort) -> list:
    """The cohort's touchpoints from its integration plan (``Touchpoint(kind, due_at_utc)``)."""
    return list(integration_plan.touchpoints(cohort))


def eligible(enr: Enrollment, participant: User | None = None) -> bool:
    """Confirmed seat, not left, and not opted out of non-essential messages."""
    participant = participant or db.session.get(User, enr.participant_id)
    return enr.has_confirmed_seat and participant is not None and not participant.marketing_opt_out


def participant_due(due: datetime, tz: str | None) -> datetime:
    """``due`` moved out of the participant's quiet hours (to 08:00 in their zone)."""
    due = ensure_utc(due)
    return quiet_until(due, tz) or due


def open_for(kind: str) -> timedelta:
    return CHECKIN_OPEN_FOR if kind in CHECKIN_KINDS else SURVEY_OPEN_FOR


def _new_key(enr: Enrollment, kind: str, nonce: str) -> str:
    return f"followup-{enr.id}-{kind}-{nonce[:10]}"


def _context(f: FollowUp, enr: Enrollment, participant: User) -> dict:
    cohort = db.session.get(Cohort, enr.cohort_id)
    return {"participant_name": participant.name, "cohort_title": cohort.title, "kind": f.kind,
            "kind_label": KIND_LABELS[f.kind], "is_checkin": f.is_checkin,
            "expires_at": f.expires_at.isoformat()}


def _private(f: FollowUp) -> dict:
    """The answer link: a capability, sealed in the outbox (retreat.messaging.sealed)."""
    return {"url": links.followup_url(f)}


def _enqueue(f: FollowUp, enr: Enrollment, participant: User, now: datetime) -> OutboxMessage:
    return outbox.enqueue(
        template="followup_checkin" if f.is_checkin else "followup_survey", dedupe_key=f.outbox_dedupe_key,
        to_user=participant, context=_context(f, enr, participant), private=_private(f), due_at=f.due_at,
        essential=False, group_key=f"enrollment:{enr.id}", now=now,
        sms={"template": "checkin_waiting", "link": urls.absolute(urls.PARTICIPANT_HOME_PATH),
             "stale_after": f.expires_at} if f.is_checkin else None)


def _message(f: FollowUp) -> OutboxMessage | None:
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f.outbox_dedupe_key))


def _cancel(f: FollowUp, reason: str, now: datetime) -> bool:
    if f.status != FollowUpStatus.SCHEDULED:
        return False
    msg = _message(f)
    if msg is not None and msg.status == OutboxStatus.SENT.value:
        _mark_sent(f, msg)  # too late to stop: it went out
        return False
    outbox.cancel(dedupe_keys=[f.outbox_dedupe_key], now=now)
    f.status = FollowUpStatus.CANCELLED.value
    f.cancelled_reason = reason[:200]
    f.updated_at = now
    return True


def _mark_sent(f: FollowUp, msg: OutboxMessage) -> None:
    f.status = FollowUpStatus.SENT.value
    f.sent_at = msg.sent_at
    f.updated_at = msg.sent_at or f.updated_at


def sync_enrollment(enr: Enrollment, now: datetime, *, touchpoints: Iterable | None = None) -> SyncResult:
    """Create, move or cancel ``enr``'s follow-ups to match the plan. Idempotent."""
    result = SyncResult()
    enr = locking.lock(Enrollment, enr.id)  # one sync per enrollment at a time: no duplicate rows, no double enqueue
    participant = db.session.get(User, enr.participant_id)
    rows = {f.kind: f for f in db.session.scalars(select(FollowUp).where(FollowUp.enrollment_id == enr.id))}
    if not eligible(enr, participant):
        reason = ("opted out of non-essential messages" if participant is not None and participant.marketing_opt_out
                  else "no longer taking part")
        result.cancelled = sum(_cancel(f, reason, now) for f in rows.values())
        return result
    if touchpoints is None:
        touchpoints = plan_touchpoints(db.session.get(Cohort, enr.cohort_id))
    discharged = discharged_at(enr)
    wanted: dict[str, datetime] = {}
    for tp in touchpoints:
        kind = str(getattr(tp.kind, "value", tp.kind))
        if kind in KINDS:
            due = tp.due_at_utc
            if discharged is not None and kind in integration_plan.CHECKIN_AFTER:
                due = discharged + integration_plan.CHECKIN_AFTER[kind]  # from their own discharge
            wanted[kind] = participant_due(due, participant.tz)
    for kind, f in rows.items():
        if kind not in wanted:
            result.cancelled += _cancel(f, "removed from the integration plan", now)
    for kind, due in wanted.items():
        expires = due + open_for(kind)
        f = rows.get(kind)
        if f is None:
            if expires <= now:
                continue  # its moment has passed: a late link would only confuse
            nonce = secrets.token_urlsafe(24)
            f = FollowUp(enrollment_id=enr.id, kind=kind, due_at=due, status=FollowUpStatus.SCHEDULED.value,
                         outbox_dedupe_key=_new_key(enr, kind, nonce), token_nonce=nonce, expires_at=expires,
                         created_at=now, updated_at=now)
            db.session.add(f)
            db.session.flush()
            _enqueue(f, enr, participant, now)
            result.created += 1
        elif f.status == FollowUpStatus.SCHEDULED:
            msg = _message(f)
            if msg is not None and msg.status == OutboxStatus.SENT.value:
                _mark_sent(f, msg)
                continue
            if f.due_at != due or f.expires_at != expires:
                f.due_at, f.expires_at, f.updated_at = due, expires, now
                result.moved += 1
            if msg is None or msg.status == OutboxStatus.CANCELLED.value:
                _reissue(f, now)
                _enqueue(f, enr, participant, now)
            elif msg.status == OutboxStatus.PENDING.value and msg.due_at != due:
                outbox.reschedule(f.outbox_dedupe_key, due, context=_context(f, enr, participant),
                                  private=_private(f), now=now)
        elif f.status == FollowUpStatus.CANCELLED and expires > now:
            _reissue(f, now)  # back in the plan (or back in the programme): a fresh link and message
            f.due_at, f.expires_at, f.status, f.cancelled_reason = due, expires, FollowUpStatus.SCHEDULED.value, None
            _enqueue(f, enr, participant, now)
            result.created += 1
        # sent, answered, expired: history, left alone
    return result


def discharged_at(enr: Enrollment) -> datetime | None:
    """When ``enr`` was discharged from the cohort's last dosing session (None: not yet, or that
    session is no longer the last one)."""
    last = (select(CohortSession.id).where(CohortSession.cohort_id == enr.cohort_id,
                                           CohortSession.kind == SessionKind.DOSING.value)
            .order_by(CohortSession.ends_at.desc(), CohortSession.id.desc()).limit(1).scalar_subquery())
    at = db.session.scalar(select(Discharge.discharged_at).where(Discharge.enrollment_id == enr.id,
                                                                 Discharge.cohort_session_id == last))
    return ensure_utc(at) if at is not None else None


def _reissue(f: FollowUp, now: datetime) -> None:
    """A new nonce and dedupe key: the old message was never sent, so nothing is sent twice."""
    f.token_nonce = secrets.token_urlsafe(24)
    f.outbox_dedupe_key = _new_key(f.enrollment, f.kind, f.token_nonce)
    f.updated_at = now


def sync_cohort(cohort: Cohort, now: datetime, *, touchpoints: Iterable | None = None) -> SyncResult:
    """``sync_enrollment`` for every enrollment of ``cohort`` (a plan listener: plan or dates changed)."""
    tps = list(touchpoints) if touchpoints is not None else plan_touchpoints(cohort)
    total = SyncResult()
    ids = db.session.scalars(select(Enrollment.id).where(Enrollment.cohort_id == cohort.id))
    for enr in locking.lock_many(Enrollment, ids):  # all of them first, in id order
        r = sync_enrollment(enr, now, touchpoints=tps)
        total.created += r.created
        total.moved += r.moved
        total.cancelled += r.cancelled
    return total


def cancel_for_enrollment(enr: Enrollment, *, now: datetime, reason: str = "no longer taking part") -> int:
    """Stop every follow-up not yet sent (withdrawal, cancellation)."""
    rows = db.session.scalars(select(FollowUp).where(FollowUp.enrollment_id == enr.id,
                                                     FollowUp.status == FollowUpStatus.SCHEDULED.value))
    return sum(_cancel(f, reason, now) for f in list(rows))


def for_enrollment(enr: Enrollment) -> list[FollowUp]:
    return list(db.session.scalars(select(FollowUp).where(FollowUp.enrollment_id == enr.id)
                                   .order_by(FollowUp.due_at, FollowUp.id)))


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------


def sweep_unanswered(now: datetime) -> int:
    """Copy delivery onto follow-ups, expire old links, alert on unanswered 72-hour check-ins.

    Returns how many no-response alerts were raised.
    """
    pending = db.session.execute(locking.claim(
        select(FollowUp, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.dedupe_key == FollowUp.outbox_dedupe_key)
        .where(FollowUp.status == FollowUpStatus.SCHEDULED.value,
               OutboxMessage.status.in_([OutboxStatus.SENT.value, OutboxStatus.CANCELLED.value])),
        of=FollowUp)).all()
    for f, msg in pending:
        if msg.status == OutboxStatus.SENT.value:
            _mark_sent(f, msg)
        else:
            f.status = FollowUpStatus.CANCELLED.value
            f.cancelled_reason = (msg.last_error or "message cancelled")[:200]
            f.updated_at = now
    stale = db.session.scalars(locking.claim(
        select(FollowUp).where(FollowUp.status.in_([FollowUpStatus.SCHEDULED.value, FollowUpStatus.SENT.value]),
                               FollowUp.expires_at <= now)))
    for f in list(stale):
        if f.status == FollowUpStatus.SCHEDULED:
            outbox.cancel(dedupe_keys=[f.outbox_dedupe_key], now=now)
        f.status = FollowUpStatus.EXPIRED.value
        f.updated_at = now
    already = select(IntegrationAlert.id).where(IntegrationAlert.follow_up_id == FollowUp.id,
                                                IntegrationAlert.reason == AlertReason.NO_RESPONSE_72H.value)
    silent = db.session.scalars(
        select(FollowUp).join(Enrollment, Enrollment.id == FollowUp.enrollment_id)
        .where(FollowUp.kind == FollowUpKind.CHECKIN_72H.value,
               FollowUp.status.in_([FollowUpStatus.SENT.value, FollowUpStatus.EXPIRED.value]),
               FollowUp.answered_at.is_(None), FollowUp.sent_at.is_not(None),
               FollowUp.sent_at <= now - NO_RESPONSE_AFTER,
               Enrollment.status.not_in([s.value for s in EXITS]), ~already.exists())
        .order_by(FollowUp.id))
    raised = 0
    for f in list(silent):
        raised += len(raise_alerts(f.enrollment, f, [AlertReason.NO_RESPONSE_72H.value], now=now))
    return raised


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------


def _url(path: str) -> str:
    return f"{urls.base_url()}{path}"


def raise_alerts(enr: Enrollment, f: FollowUp, reasons: Iterable[str], *, now: datetime) -> list[IntegrationAlert]:
    """One alert per new reason; one email to the cohort's facilitators (no details) if any is new."""
    from retreat.cohorts.catalog import facilitators

    created: list[IntegrationAlert] = []
    for reason in dict.fromkeys(str(r) for r in reasons):
        if reason not in {r.value for r in AlertReason}:
            raise ValueError(f"unknown alert reason {reason!r}")
        alert = IntegrationAlert(enrollment_id=enr.id, cohort_id=enr.cohort_id, follow_up_id=f.id, reason=reason,
                                 created_at=now, updated_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(alert)
                db.session.flush()
        except IntegrityError:  # raised before (or concurrently): once is enough
            continue
        created.append(alert)
    if not created:
        return created
    cohort = db.session.get(Cohort, enr.cohort_id)
    first = created[0]
    for person in facilitators(cohort):
        outbox.enqueue(template="integration_alert", dedupe_key=f"integration-alert-{first.id}-u{person.id}",
                       to_user=person, essential=True, group_key=f"integration-alert:{first.id}", now=now,
                       context={"recipient_name": person.name, "cohort_title": cohort.title,
                                "url": _url("/facilitator/#integration-alerts")})
    for alert in created:
        audit.record("integration.alert_raised", object_type="integration_alert", object_id=alert.id,
                     details={"enrollment_id": enr.id, "cohort_id": cohort.id, "highlight": True}, now=now)
    return created


def _visible(viewer: User | None):
    return team.on_team(viewer, IntegrationAlert.cohort_id) if viewer is not None else true()


_ALERT_LOADS = (joinedload(IntegrationAlert.enrollment).joinedload(Enrollment.participant),
                joinedload(IntegrationAlert.cohort), joinedload(IntegrationAlert.acknowledged_by))


def open_alerts(limit: int = 100, *, viewer: User | None = None) -> list[IntegrationAlert]:
    """Unacknowledged alerts, oldest first; with ``viewer``, only those of their cohorts."""
    return list(db.session.scalars(select(IntegrationAlert).where(IntegrationAlert.acknowledged_at.is_(None),
                                                                  _visible(viewer)).options(*_ALERT_LOADS)
                                   .order_by(IntegrationAlert.created_at, IntegrationAlert.id).limit(limit)))


def unacknowledged(viewer: User, *, limit: int = 5) -> Batch:
    """Unacknowledged integration alerts of ``viewer``'s cohorts, oldest first (their home's panel)."""
    return first_of(select(IntegrationAlert).where(IntegrationAlert.acknowledged_at.is_(None), _visible(viewer))
                    .options(*_ALERT_LOADS)
                    .order_by(IntegrationAlert.created_at, IntegrationAlert.id), limit=limit)


def overdue_checkins(viewer: User, now: datetime, *, limit: int = 5) -> Batch:
    """Check-ins of ``viewer``'s cohorts sent more than ``NO_RESPONSE_AFTER`` ago, still unanswered and
    still open: someone should nudge the participant. Oldest first."""
    stmt = (select(FollowUp).join(Enrollment, Enrollment.id == FollowUp.enrollment_id)
            .where(FollowUp.kind.in_(sorted(CHECKIN_KINDS)), FollowUp.status == FollowUpStatus.SENT.value,
                   FollowUp.answered_at.is_(None), FollowUp.sent_at <= now - NO_RESPONSE_AFTER,
                   FollowUp.expires_at > now, Enrollment.status.not_in([s.value for s in EXITS]),
                   team.on_team(viewer, Enrollment.cohort_id))
            .options(joinedload(FollowUp.enrollment).joinedload(Enrollment.participant),
                     joinedload(FollowUp.enrollment).joinedload(Enrollment.cohort))
            .order_by(FollowUp.sent_at, FollowUp.id))
    return first_of(stmt, limit=limit)


def recent_acknowledged(limit: int = 20, *, viewer: User | None = None) -> list[IntegrationAlert]:
    return list(db.session.scalars(select(IntegrationAlert).where(IntegrationAlert.acknowledged_at.is_not(None),
                                                                  _visible(viewer)).options(*_ALERT_LOADS)
                                   .order_by(IntegrationAlert.acknowledged_at.desc()).limit(limit)))


def acknowledge(alert_id: int, actor: User, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """A facilitator of the alert's cohort (or an admin) has followed up. Repeating it is a no-op
    (False); anyone else is told the alert does not exist."""
    if actor.role not in (Role.FACILITATOR, Role.ADMIN) or not db.session.scalar(
            select(IntegrationAlert.id).where(IntegrationAlert.id == alert_id, _visible(actor))):
        raise NotFound("We could not find that alert.")
    alert = locking.lock(IntegrationAlert, alert_id)
    if alert is None:
        raise NotFound("We could not find that alert.")
    if alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at = now
    alert.acknowledged_by_id = actor.id
    alert.updated_at = now
    audit.record("integration.alert_acknowledged", actor=actor, object_type="integration_alert", object_id=alert.id,
                 ctx=ctx, now=now)
    return True


# --------------------------------------------------------------------------------------------
# Response rates (counts only: nothing clinical)
# --------------------------------------------------------------------------------------------


@dataclass
class KindRate:
    kind: str
    delivered: int
    answered: int

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def percent(self) -> int | None:
        return round(100 * self.answered / self.delivered) if self.delivered else None


@dataclass
class CohortRates:
    cohort: Cohort
    kinds: list[KindRate]

    @property
    def delivered(self) -> int:
        return sum(k.delivered for k in self.kinds)

    @property
    def answered(self) -> int:
        return sum(k.answered for k in self.kinds)

    @property
    def percent(self) -> int | None:
        return round(100 * self.answered / self.delivered) if self.delivered else None


def response_rates() -> list[CohortRates]:
    """Per cohort and kind: follow-ups delivered (sent, answered or expired) and answered."""
    # "scheduled" with its email already out counts as sent before the sweep has recorded it
    rows = db.session.execute(
        select(Enrollment.cohort_id, FollowUp.kind, FollowUp.status, func.count())
        .join(Enrollment, Enrollment.id == FollowUp.enrollment_id)
        .outerjoin(OutboxMessage, OutboxMessage.dedupe_key == FollowUp.outbox_dedupe_key)
        .where(or_(FollowUp.status.in_(_DELIVERED), and_(FollowUp.status == FollowUpStatus.SCHEDULED.value,
                                                         OutboxMessage.status == OutboxStatus.SENT.value)))
        .group_by(Enrollment.cohort_id, FollowUp.kind, FollowUp.status)).all()
    counts: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for cohort_id, kind, status, n in rows:
        counts[cohort_id][kind][0] += n
        if status == FollowUpStatus.ANSWERED:
            counts[cohort_id][kind][1] += n
    if not counts:
        return []
    cohorts = db.session.scalars(select(Cohort).where(Cohort.id.in_(counts)).order_by(Cohort.starts_at.desc()))
    return [CohortRates(c, [KindRate(k, *counts[c.id][k]) for k in KINDS if k in counts[c.id]]) for c in cohorts]


# The plan (or the dates it hangs on) changed: move this cohort's follow-ups with it.
if sync_cohort not in integration_plan.PLAN_LISTENERS:
    integration_plan.PLAN_LISTENERS.append(sync_cohort)


# --------------------------------------------------------------------------------------------
# Reacting to the cohort's pipeline (retreat.core.signals)
# --------------------------------------------------------------------------------------------


@signals.enrollment_left.connect(order=20)
def _cancel_on_leaving(enr: Enrollment, *, now: datetime, actor=None) -> None:
    cancel_for_enrollment(enr, now=now, reason=f"left: {enr.status}")


@signals.seat_confirmed.connect(order=20)
def _schedule_on_joining(enr: Enrollment, *, now: datetime) -> None:
    sync_enrollment(enr, now)  # check-ins and surveys from the cohort's integration plan


jobs.register("integration.sweep_unanswered", sweep_unanswered, seconds=300)
