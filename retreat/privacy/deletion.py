"""A participant's deletion request: what is erased at once, what is retained, who is told.

Erased at once: intakes never submitted (drafts). Retained as medical and financial records:
submitted intakes, clearance decisions, consents, payments and the audit log. The request itself
is an audit event (``privacy.deletion_requested``), and active admins get an email without details.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.audit.models import AuditEvent
from retreat.clinical.models import Intake, IntakeStatus
from retreat.core import locking, urls
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox

ACTION = "privacy.deletion_requested"
REASON_MAX = 1000


def request_deletion(participant: User, *, reason: str = "", now: datetime,
                     ctx: RequestContext | None = None) -> int:
    """Log the request and erase what the practice need not keep: intakes never submitted.

    Submitted intakes, clearance decisions, consents, payments and the audit log are retained as
    medical and financial records. Admins are told (no details). Returns how many drafts were erased.
    """
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"Please keep this under {REASON_MAX} characters.", field="reason")
    erased = 0
    for intake in locking.lock_where(select(Intake).where(
            Intake.participant_id == participant.id, Intake.status == IntakeStatus.DRAFT.value,
            Intake.submissions == 0), Intake):
        intake.answers_enc = None
        intake.status = IntakeStatus.ERASED.value
        intake.updated_at = now
        erased += 1
    audit.record(ACTION, actor=participant, object_type="user", object_id=participant.id,
                 details={"erased_drafts": erased, "highlight": True, "reason_given": bool(reason)}, ctx=ctx, now=now)
    _tell_admins(participant, now=now)
    return erased


def _tell_admins(participant: User, *, now: datetime) -> None:
    admins = db.session.scalars(select(User).where(User.role == Role.ADMIN.value, User.is_active_account.is_(True)))
    for admin in admins:
        outbox.enqueue(template="clearance_deletion_requested",
                       dedupe_key=f"deletion-{participant.id}-{now.isoformat()}-u{admin.id}", to_user=admin, now=now,
                       context={"recipient_name": admin.name, "url": urls.absolute("/admin/")})


def deletion_requested_at(participant: User) -> datetime | None:
    """When the participant last asked for deletion (None if never)."""
    return db.session.scalar(select(AuditEvent.at).where(
        AuditEvent.action == ACTION, AuditEvent.object_type == "user",
        AuditEvent.object_id == str(participant.id)).order_by(AuditEvent.at.desc()).limit(1))
