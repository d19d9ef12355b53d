"""The practice's side of deletion requests: the admins' list, one request's reason (an audited
read), and declining a request with a note (audited); ``privacy.erasure`` carries one out.

Statuses move only forward: open -> done or open -> declined. Repeating the same close is a
no-op; closing a request already closed the other way is a ``Conflict``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, PermissionDenied, ValidationFailed
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db
from retreat.privacy.deletion import RESPONSE_DAYS, bounded_text, reasons_of
from retreat.privacy.models import DeletionRequest, DeletionStatus

READ_ACTION = "privacy.deletion_reason_read"
CLOSE_ACTIONS = {DeletionStatus.DONE: "privacy.deletion_done", DeletionStatus.DECLINED: "privacy.deletion_declined"}
NOTE_MAX = 1000
STATUSES = [s.value for s in DeletionStatus]


def _require_admin(actor: User | None) -> None:
    if actor is None or actor.role != Role.ADMIN.value:
        raise PermissionDenied("Only admins handle deletion requests.")


require_admin = _require_admin


def bounded_note(note: str | None) -> str:
    """The admin's note, stripped and bounded (NUL refused)."""
    return bounded_text(note, limit=NOTE_MAX, field="note")


def list_statement(status: str | None = None) -> Select:
    """Deletion requests with their participant and handler (one statement): open ones first, the
    oldest first (the nearest deadline), then the closed ones, the most recently handled first."""
    is_open = DeletionRequest.status == DeletionStatus.OPEN.value
    stmt = (select(DeletionRequest)
            .options(joinedload(DeletionRequest.participant), joinedload(DeletionRequest.handled_by))
            .order_by(case((is_open, 0), else_=1), case((is_open, DeletionRequest.requested_at), else_=None),
                      DeletionRequest.handled_at.desc(), DeletionRequest.id.desc()))
    if status:
        stmt = stmt.where(DeletionRequest.status == status)
    return stmt


def count_by_status() -> dict[str, int]:
    counts = dict(db.session.execute(select(DeletionRequest.status, func.count()).group_by(DeletionRequest.status)).all())
    return {s: counts.get(s, 0) for s in STATUSES}


def due_by(req: DeletionRequest) -> datetime:
    """When the practice should have answered (``RESPONSE_DAYS`` after the first request)."""
    return req.requested_at + timedelta(days=RESPONSE_DAYS)


def read_reason(req: DeletionRequest, actor: User, *, ctx: RequestContext | None, now: datetime) -> list[dict]:
    """The request's reasons, for an admin, decrypted; each read that shows one is audited."""
    _require_admin(actor)
    reasons = reasons_of(req)
    if reasons:
        audit.record(READ_ACTION, actor=actor, object_type="deletion_request", object_id=req.id,
                     details={"participant_id": req.participant_id}, ctx=ctx, now=now)
    return [{"at": datetime.fromisoformat(r["at"]), "text": r["text"]} for r in reasons]


def close(req: DeletionRequest, status: DeletionStatus, *, actor: User, note: str | None, now: datetime,
          ctx: RequestContext | None = None) -> DeletionRequest:
    """Decline the request, with the admin's note (required). A request becomes done only by being
    carried out (``privacy.erasure.carry_out``, which erases, closes the account and tells the person)."""
    _require_admin(actor)
    if status != DeletionStatus.DECLINED:
        raise ValidationFailed("A request is marked done only by carrying it out.", field="status")
    note = bounded_note(note)
    if status == DeletionStatus.DECLINED and not note:
        raise ValidationFailed("Say why the request is declined: the participant is told.", field="note")
    req = locking.lock(DeletionRequest, req.id)
    if req.status == status.value:
        return req  # repeated: nothing changes
    if req.status != DeletionStatus.OPEN.value:
        raise Conflict(f"This request was already marked {req.status}.")
    req.status = status.value
    req.handled_by_id = actor.id
    req.handled_at = now
    req.note = note or None
    audit.record(CLOSE_ACTIONS[status], actor=actor, object_type="deletion_request", object_id=req.id,
                 details={"participant_id": req.participant_id, "note_given": bool(note)}, ctx=ctx, now=now)
    return req


def export_rows(participant: User) -> list[dict]:
    """The participant's deletion requests with their reasons, for their own export only."""
    rows = db.session.scalars(select(DeletionRequest).options(joinedload(DeletionRequest.handled_by))
                              .where(DeletionRequest.participant_id == participant.id).order_by(DeletionRequest.id))
    return [{"requested_at": r.requested_at.isoformat(), "last_requested_at": r.last_requested_at.isoformat(),
             "times_requested": r.times_requested, "status": r.status, "reasons": reasons_of(r),
             "handled_at": r.handled_at.isoformat() if r.handled_at else None,
             "handled_by": r.handled_by.name if r.handled_by else None, "note": r.note} for r in rows]


def open_requests(*, limit: int = 5) -> Batch:
    """Open deletion requests, the nearest deadline first (the admin's home)."""
    return first_of(list_statement(DeletionStatus.OPEN.value), limit=limit)
