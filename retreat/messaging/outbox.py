"""The outbox: queue, reschedule and cancel messages in the caller's transaction.

A message is written in the same transaction as the change that causes it, so a booking and its
confirmation are committed together or not at all. The dispatcher (``retreat.messaging``) sends
what is due. ``dedupe_key`` makes queueing idempotent: the same logical message is never queued
twice, whatever retries happen upstream. Capability links go in ``private`` / ``private_ics``:
stored encrypted, never in the plain context (``retreat.messaging.sealed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import make_transient_to_detached

from retreat import audit
from retreat.core import batching
from retreat.core.context import Actor, RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import links, sms_outbox
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.messaging.render import STAFF_AUDIENCE
from retreat.messaging.sealed import seal, unseal
from retreat.timeutil import is_valid_zone, now_utc

_CLINICAL_KEYS = frozenset({
    "intake", "answers", "medications", "diagnosis", "phq9", "gad7", "contraindications", "flags",
    "mood", "notes", "private_text", "journal", "conditions", "clearance_notes",
})


def _check_context(context: dict) -> dict:
    """Context holds ids and plain values; refuse anything that looks like health data."""
    bad = sorted(k for k in context if k.lower() in _CLINICAL_KEYS)
    if bad:
        raise ValidationFailed(f"Outbox context must not carry clinical data: {', '.join(bad)}", field="context")
    for key, value in context.items():
        if not isinstance(value, str | int | float | bool | type(None) | list | dict):
            raise ValidationFailed(f"Outbox context value for {key!r} is not plain data", field="context")
    return context


def enqueue(
    *,
    template: str,
    dedupe_key: str,
    to_email: str | None = None,
    to_user: Actor | None = None,
    to_name: str | None = None,
    tz: str | None = None,
    context: dict | None = None,
    due_at: datetime | None = None,
    essential: bool = True,
    group_key: str | None = None,
    ics: dict | None = None,
    private: dict | None = None,
    private_ics: dict | None = None,
    sms: dict | None = None,
    now: datetime | None = None,
) -> OutboxMessage | None:
    """Queue one message. Queuing the same ``dedupe_key`` again returns the existing row unchanged
    (inside ``batched()`` on PostgreSQL: None, the row is written at the end of the block).

    ``sms`` ({"template": ..., plain fields}) also queues its SMS twin (``"<dedupe_key>:sms"``) when
    ``to_user`` opted in to SMS with a verified number, or without ``to_user`` when the guest's booking
    ``sms["consultation_id"]`` has one (``messaging.sms_outbox``). The spec is kept on the row
    (``sms_spec``), so a number verified or SMS turned on later still gets the twin while the email
    is pending (``sms_outbox.queue_pending_twins``)."""
    now = now or now_utc()
    if sms and (to_user is not None or sms.get("consultation_id")):
        sms_outbox.queue_for_user(sms, email_key=dedupe_key, user_id=to_user.id if to_user is not None else None,
                                  tz=tz or getattr(to_user, "tz", None), due_at=due_at or now, now=now,
                                  group_key=group_key)
    postgres = db.session.get_bind().dialect.name == "postgresql"
    if not postgres:
        existing = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    email = (to_email or (to_user.email if to_user else "") or "").strip()
    if not email:
        raise ValidationFailed("A message needs a recipient.", field="recipient")
    zone = tz or (to_user.tz if to_user else None) or "UTC"
    if not is_valid_zone(zone):
        zone = "UTC"
    due = due_at or now
    context = dict(context or {})
    if to_user is not None and to_user.role != "participant":
        context["audience"] = STAFF_AUDIENCE  # a staff email: no crisis block (messaging.render)
    private_enc = seal(_check_context(dict(private or {})), private_ics)
    sms_spec = sms_outbox.stored_spec(sms) if sms else None
    if postgres:
        return _insert_or_existing(dict(
            dedupe_key=dedupe_key[:200], group_key=group_key, recipient_user_id=to_user.id if to_user else None,
            recipient_email=email, recipient_name=to_name or (to_user.name if to_user else None), recipient_tz=zone,
            template=template, context=_check_context(dict(context or {})), ics=ics, private_enc=private_enc,
            essential=essential, due_at=due, next_attempt_at=due, status=OutboxStatus.PENDING.value, attempts=0,
            link_origin=links.current_origin(), sms_spec=sms_spec))
    msg = OutboxMessage(
        dedupe_key=dedupe_key[:200],
        group_key=group_key,
        recipient_user_id=to_user.id if to_user else None,
        recipient_email=email,
        recipient_name=to_name or (to_user.name if to_user else None),
        recipient_tz=zone,
        template=template,
        context=_check_context(dict(context or {})),
        ics=ics,
        private_enc=private_enc,
        essential=essential,
        due_at=due,
        next_attempt_at=due,
        status=OutboxStatus.PENDING.value,
        attempts=0,
        link_origin=links.current_origin(),  # links are rebased onto BASE_URL when sent (messaging.links)
        sms_spec=sms_spec,
    )
    # A savepoint makes a concurrent duplicate (unique dedupe_key) a no-op instead of an error
    # (PostgreSQL uses INSERT ... ON CONFLICT DO NOTHING instead: one round trip, see below).
    try:
        with db.session.begin_nested():
            db.session.add(msg)
            db.session.flush()
    except Exception:  # IntegrityError from a concurrent enqueue of the same key
        existing = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is None:
            raise
        return existing
    return msg


_BATCH: ContextVar[list | None] = ContextVar("outbox_batch", default=None)
_BATCH_INSERT = pg_insert(OutboxMessage.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"])


@contextmanager
def batched():
    """Queue the messages enqueued inside with one multi-row INSERT on PostgreSQL (a booking's
    confirmation, reminders and facilitator notice: one round trip instead of four). Inside, on
    PostgreSQL, ``enqueue`` returns None; the rows are written when the block ends normally."""
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    with batching.gather(_BATCH, _BATCH_INSERT):
        yield


def _insert_or_existing(values: dict) -> OutboxMessage | None:
    """PostgreSQL: one ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id``; the new row is
    put in the session as the persistent object it is (no reload). A key queued already, earlier or
    concurrently, returns the existing row unchanged."""
    stamp = now_utc()
    row = dict(values, kind="email", created_at=stamp, updated_at=stamp)
    pending = _BATCH.get()
    if pending is not None:
        pending.append(row)
        return None
    new_id = db.session.execute(pg_insert(OutboxMessage.__table__).values(**row)
                                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                                .returning(OutboxMessage.__table__.c.id)).scalar()
    if new_id is None:
        return db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == values["dedupe_key"]))
    msg = OutboxMessage(id=new_id, lease_until=None, leased_by=None, last_error=None, sent_at=None,
                        cancelled_at=None, **row)
    make_transient_to_detached(msg)
    db.session.add(msg)
    return msg


def cancel(*, dedupe_keys: Iterable[str] = (), group_key: str | None = None,
           now: datetime | None = None) -> int:
    """Cancel pending messages (e.g. a cancelled booking's reminders), and their SMS twins. Sent
    ones stay sent."""
    now = now or now_utc()
    conds = []
    keys = list(dedupe_keys)
    sms_outbox.cancel(dedupe_keys=keys, group_key=group_key, now=now)
    if keys:
        conds.append(OutboxMessage.dedupe_key.in_(keys))
    if group_key:
        conds.append(OutboxMessage.group_key == group_key)
    if not conds:
        return 0
    result = db.session.execute(
        update(OutboxMessage)
        .where(or_(*conds), OutboxMessage.status == OutboxStatus.PENDING.value)
        .values(status=OutboxStatus.CANCELLED.value, cancelled_at=now, updated_at=now, private_enc=None)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount or 0


def reschedule(dedupe_key: str, due_at: datetime, *, context: dict | None = None,
               ics: dict | None = None, private: dict | None = None,
               now: datetime | None = None) -> OutboxMessage | None:
    """Move a pending message to a new time (and optionally refresh its context and sealed links)."""
    now = now or now_utc()
    sms_outbox.reschedule(dedupe_key, due_at, now=now)
    msg = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key).with_for_update()
    )
    if msg is None or msg.status != OutboxStatus.PENDING.value:
        return None
    if msg.sms_spec:
        msg.sms_spec = sms_outbox.moved_spec(msg.sms_spec, msg.due_at, due_at)
    msg.due_at = due_at
    msg.next_attempt_at = due_at
    origin = links.current_origin()
    if (context is not None or ics is not None or private is not None) and msg.link_origin != origin:
        # New parts are written under today's BASE_URL: move the kept ones there too (one origin a row).
        if msg.link_origin:
            msg.context = links.rebase(dict(msg.context or {}), msg.link_origin, origin)
            msg.ics = links.rebase(dict(msg.ics), msg.link_origin, origin) if msg.ics else msg.ics
            if msg.private_enc and private is None:
                kept, kept_ics = unseal(msg.private_enc)
                msg.private_enc = seal(links.rebase(kept, msg.link_origin, origin) or None,
                                       links.rebase(kept_ics, msg.link_origin, origin) or None)
        msg.link_origin = origin
    if context is not None:
        msg.context = _check_context(dict(context))
    if ics is not None:
        msg.ics = ics
    if private is not None:
        msg.private_enc = seal(_check_context(dict(private)))
    msg.updated_at = now
    return msg


def pending_for_group(group_key: str) -> list[OutboxMessage]:
    return list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.group_key == group_key,
                                    OutboxMessage.status == OutboxStatus.PENDING.value)
        .order_by(OutboxMessage.due_at)
    ))


# --------------------------------------------------------------------------------------------
# Operator actions (admin page, `flask messages retry`)
# --------------------------------------------------------------------------------------------

STATUS_ORDER = (OutboxStatus.FAILED, OutboxStatus.SENDING, OutboxStatus.PENDING,
                OutboxStatus.SENT, OutboxStatus.CANCELLED)


def messages_query(*, status: str | None = None, search: str | None = None, template: str | None = None,
                   recipient: str | None = None):
    """The outbox for operators, as an ordered select: failed first, then in flight, pending, sent,
    cancelled; newest first within each. ``recipient`` matches the address or name, ``search`` also
    the template and dedupe key."""
    from sqlalchemy import case

    order = case({s.value: i for i, s in enumerate(STATUS_ORDER)}, value=OutboxMessage.status)
    stmt = select(OutboxMessage).order_by(order, OutboxMessage.next_attempt_at.desc(), OutboxMessage.id.desc())
    if status:
        if status not in {s.value for s in OutboxStatus}:
            raise ValidationFailed(f"Unknown status {status!r}.", field="status")
        stmt = stmt.where(OutboxMessage.status == status)
    if template:
        stmt = stmt.where(OutboxMessage.template == template)
    if recipient:
        like = f"%{recipient.strip().lower()}%"
        stmt = stmt.where(or_(OutboxMessage.recipient_email.ilike(like), OutboxMessage.recipient_name.ilike(like)))
    if search:
        like = f"%{search.strip().lower()}%"
        stmt = stmt.where(or_(OutboxMessage.recipient_email.ilike(like), OutboxMessage.template.ilike(like),
                              OutboxMessage.dedupe_key.ilike(like)))
    return stmt


def list_messages(*, status: str | None = None, search: str | None = None, limit: int = 200):
    return list(db.session.scalars(messages_query(status=status, search=search).limit(max(1, min(limit, 1000)))))


def templates_in_use() -> list[str]:
    """The kinds of message (templates) the outbox holds, for the admin's filter."""
    return list(db.session.scalars(select(OutboxMessage.template).distinct().order_by(OutboxMessage.template)))


def count_by_status() -> dict[str, int]:
    from sqlalchemy import func

    rows = db.session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    counts = {s.value: 0 for s in OutboxStatus}
    counts.update({status: n for status, n in rows})
    return counts


def _locked(message_id: int) -> OutboxMessage:
    msg = db.session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update())
    if msg is None:
        raise NotFound("No such message.")
    return msg


def retry(message_id: int, *, actor: Actor | None, now: datetime | None = None,
          ctx: RequestContext | None = None, actor_email: str | None = None) -> OutboxMessage:
    """Put a failed message back in the queue, due now, with a fresh set of attempts. Audited."""
    now = now or now_utc()
    msg = _locked(message_id)
    if msg.status == OutboxStatus.PENDING.value:
        return msg  # already queued: repeating the retry is a no-op
    if msg.status != OutboxStatus.FAILED.value:
        raise Conflict(f"Only failed messages can be retried (this one is {msg.status}).")
    previous = msg.last_error
    msg.status = OutboxStatus.PENDING.value
    msg.attempts = 0
    msg.next_attempt_at = now
    msg.lease_until = msg.leased_by = None
    msg.updated_at = now
    audit.record("messages.retry", actor=actor, actor_email=actor_email, object_type="outbox_message",
                 object_id=msg.id, details={"template": msg.template, "previous_error": (previous or "")[:500]},
                 ctx=ctx, now=now)
    return msg


def cancel_message(message_id: int, *, actor: Actor | None, now: datetime | None = None,
                   ctx: RequestContext | None = None) -> OutboxMessage:
    """Cancel one pending message (an operator's decision). Audited."""
    now = now or now_utc()
    msg = _locked(message_id)
    if msg.status == OutboxStatus.CANCELLED.value:
        return msg
    if msg.status != OutboxStatus.PENDING.value:
        raise Conflict(f"Only pending messages can be cancelled (this one is {msg.status}).")
    msg.status = OutboxStatus.CANCELLED.value
    msg.cancelled_at = now
    msg.private_enc = None
    msg.last_error = f"cancelled by {actor.email if actor else 'an operator'}"
    msg.updated_at = now
    audit.record("messages.cancel", actor=actor, object_type="outbox_message", object_id=msg.id,
                 details={"template": msg.template}, ctx=ctx, now=now)
    return msg
