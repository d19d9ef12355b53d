"""Staff's list of consultations (``GET /api/v1/consultations``): a facilitator's own, or every
one for an admin; filtered by start day (UTC, inclusive) and status; keyset pages in the stable
order ``(start_at, id)``. One query per page. Never the reason or pre-screen answers (encrypted
fields), only who, when and the status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import joinedload

from retreat.accounts.models import Role
from retreat.consults.models import Consultation
from retreat.core import cursors
from retreat.core.context import Actor
from retreat.core.errors import ValidationFailed
from retreat.extensions import db

MAX_LIMIT, DEFAULT_LIMIT = 200, 50


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def consult_item(c: Consultation) -> dict:
    return {"id": c.id, "status": c.status, "start": c.start_at, "end": c.end_at,
            "facilitator_id": c.facilitator_id, "facilitator_name": c.facilitator.name if c.facilitator else None,
            "guest_name": c.guest_name, "guest_email": c.guest_email, "guest_time_zone": c.guest_tz,
            "booked_via": c.booked_via, "cancelled_by": c.cancelled_by, "sequence": c.sequence}


def consultations(actor: Actor, *, since: date | None = None, until: date | None = None, status: str | None = None,
                  limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_LIMIT}.", field="limit")
    if since and until and until < since:
        raise ValidationFailed("to must be on or after from.", field="to")
    stmt = select(Consultation).options(joinedload(Consultation.facilitator))
    if actor.role != Role.ADMIN:
        stmt = stmt.where(Consultation.facilitator_id == actor.id)
    if since:
        stmt = stmt.where(Consultation.start_at >= datetime.combine(since, time(0), UTC))
    if until:
        stmt = stmt.where(Consultation.start_at < datetime.combine(until + timedelta(days=1), time(0), UTC))
    if status:
        stmt = stmt.where(Consultation.status == status)
    if cursor:
        at, row_id = cursors.decode_time(cursor)
        stmt = stmt.where(or_(Consultation.start_at > at, and_(Consultation.start_at == at, Consultation.id > row_id)))
    rows = list(db.session.scalars(stmt.order_by(Consultation.start_at, Consultation.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([consult_item(c) for c in rows],
                cursors.encode(rows[-1].start_at, rows[-1].id) if more and rows else None)


def locked_consult(consult_id: int) -> Consultation | None:
    """The consult, its row locked for this transaction (two staff changes of it run one at a time)."""
    return db.session.scalar(select(Consultation).where(Consultation.id == consult_id)
                             .with_for_update().execution_options(populate_existing=True))


def staff_cancel(consult: Consultation, *, actor, base_url: str, now: datetime, ctx=None) -> Consultation:
    """The facilitator cancels their consult (``booking.cancel`` by "facilitator": any time before it
    took place; a cancelled one stays cancelled and nothing is sent again)."""
    from retreat.consults import booking

    return booking.cancel(consult, by="facilitator", actor=actor, base_url=base_url, now=now, ctx=ctx)


def staff_reschedule(consult: Consultation, start: datetime, *, actor, base_url: str, now: datetime, ctx=None):
    """The facilitator moves their consult. ``booking.reschedule``'s rules apply unchanged: booked
    only, before the online change cutoff, to a future time other than the current one, beyond the
    cutoff again, and only to a time that is free in the facilitator's schedule (availability,
    buffers, daily cap, no overlap). The guest gets the new time and a new manage link. Recorded in
    the audit log under the staff member as well as the guest's own event."""
    from retreat import audit
    from retreat.consults import booking
    from retreat.core.errors import PermissionDenied

    if actor.id != consult.facilitator_id:
        raise PermissionDenied("Only the consult's facilitator can move it.")
    result = booking.reschedule(consult, start, base_url=base_url, now=now, ctx=ctx)
    audit.record("consult.rescheduled_by_staff", actor=actor, object_type="consultation", object_id=consult.id,
                 details={"start": consult.start_at.isoformat()}, ctx=ctx, now=now)
    return result
