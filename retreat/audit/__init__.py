"""The append-only audit log. Every access to clinical data and every security event lands here."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from sqlalchemy import Select, event, insert, select

from retreat.audit.models import AuditEvent
from retreat.core import batching
from retreat.core.context import Actor, RequestContext
from retreat.extensions import db
from retreat.timeutil import now_utc


def record(
    action: str,
    *,
    actor: Actor | None = None,
    object_type: str | None = None,
    object_id: object | None = None,
    details: dict | None = None,
    ctx: RequestContext | None = None,
    actor_email: str | None = None,
    now: datetime | None = None,
) -> AuditEvent | None:
    values = dict(
        at=now or now_utc(),
        actor_id=actor.id if actor is not None else None,
        actor_email=(actor.email if actor is not None else actor_email),
        role=(actor.role if actor is not None else None),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ip=ctx.ip if ctx else None,
        request_id=ctx.request_id if ctx else None,
        details=details or None,
    )
    pending = _BATCH.get()
    if pending is not None:
        pending.append(values)
        return None
    ev = AuditEvent(**values)
    db.session.add(ev)
    return ev


_BATCH: ContextVar[list | None] = ContextVar("audit_batch", default=None)
_INSERT = insert(AuditEvent.__table__)


@contextmanager
def batched():
    """Write the events recorded inside the block with one multi-row INSERT when it ends normally
    (none when it raises: a refused booking leaves no trace of the account it did not keep). Inside,
    ``record`` returns None. A consult booking records two events (the guest's new account and the
    booking): one round trip instead of two."""
    with batching.gather(_BATCH, _INSERT):
        yield


def query(
    *,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select:
    stmt = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action))
    if actor:
        stmt = stmt.where(AuditEvent.actor_email.ilike(f"%{actor.strip()}%"))
    if object_type:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    return stmt


class AppendOnlyViolation(RuntimeError):
    pass


@event.listens_for(AuditEvent, "before_update")
def _refuse_update(mapper, connection, target):  # pragma: no cover - exercised in tests
    raise AppendOnlyViolation("audit events are append-only")


@event.listens_for(AuditEvent, "before_delete")
def _refuse_delete(mapper, connection, target):  # pragma: no cover - exercised in tests
    raise AppendOnlyViolation("audit events are append-only")
