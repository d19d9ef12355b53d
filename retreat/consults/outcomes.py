"""The facilitator's consults: their lists, one consult of their own, and its recorded outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    select,
)

from retreat import audit
from retreat.accounts.models import User
from retreat.consults.models import (
    Consultation,
    ConsultStatus,
)
from retreat.consults.settings import MAX_LEN
from retreat.consults.slots import holds_time
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.crypto import encrypt_field
from retreat.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from retreat.extensions import db

OUTCOMES = ((ConsultStatus.COMPLETED.value, "Completed"), (ConsultStatus.NO_SHOW.value, "No-show"))


def get_for_facilitator(facilitator: User, consult_id: int, *, lock: bool = False) -> Consultation:
    """The facilitator's own consult (row-locked for changes), else NotFound."""
    consult = locking.lock(Consultation, consult_id) if lock else db.session.get(Consultation, consult_id)
    if consult is None or consult.facilitator_id != facilitator.id:
        raise NotFound("No such consultation.")
    return consult


def facilitator_consults(facilitator: User, now: datetime, *, past_limit: int = 100) -> dict[str, list[Consultation]]:
    """Upcoming and past consults, flagged ones first in each; cancelled ones listed apart."""
    base = select(Consultation).where(Consultation.facilitator_id == facilitator.id)
    upcoming = list(db.session.scalars(
        base.where(Consultation.status == ConsultStatus.BOOKED.value, Consultation.end_at > now)
        .order_by(Consultation.flagged.desc(), Consultation.start_at)))
    past = list(db.session.scalars(
        base.where(holds_time(), Consultation.end_at <= now)
        .order_by(Consultation.flagged.desc(), Consultation.start_at.desc()).limit(past_limit)))
    cancelled = list(db.session.scalars(
        base.where(Consultation.status == ConsultStatus.CANCELLED.value, Consultation.start_at > now - timedelta(days=30))
        .order_by(Consultation.start_at).limit(past_limit)))
    return {"upcoming": upcoming, "past": past, "cancelled": cancelled}


def record_outcome(consult: Consultation, *, facilitator: User, outcome: str, recommended_cohort: str | None,
                   notes: str | None, now: datetime, ctx: RequestContext | None = None) -> Consultation:
    if consult.facilitator_id != facilitator.id:
        raise PermissionDenied("Only the consult's facilitator records its outcome.")
    if consult.status == ConsultStatus.CANCELLED.value:
        raise Conflict("This consultation was cancelled.")
    if consult.start_at > now:
        raise Conflict("You can record the outcome once the call has started.")
    errors: dict[str, list[str]] = {}
    if outcome not in dict(OUTCOMES):
        errors["outcome"] = ["Choose completed or no-show."]
    recommended_cohort = (recommended_cohort or "").strip() or None
    if recommended_cohort and len(recommended_cohort) > MAX_LEN["recommended_cohort"]:
        errors["recommended_cohort"] = [f"Keep this under {MAX_LEN['recommended_cohort']} characters."]
    notes = (notes or "").strip() or None
    if notes and len(notes) > MAX_LEN["outcome_notes"]:
        errors["notes"] = [f"Keep the notes under {MAX_LEN['outcome_notes']} characters."]
    if errors:
        raise ValidationFailed("The outcome needs attention.", errors=errors)
    consult.status = outcome
    consult.recommended_cohort = recommended_cohort if outcome == ConsultStatus.COMPLETED.value else None
    consult.outcome_notes_encrypted = encrypt_field(notes) if notes else None
    consult.outcome_recorded_at = now
    consult.outcome_recorded_by_id = facilitator.id
    consult.updated_at = now
    audit.record("consult.outcome_recorded", actor=facilitator, object_type="consultation", object_id=consult.id,
                 details={"outcome": outcome}, ctx=ctx, now=now)
    return consult


def consults_for_participant(user: User) -> list[Consultation]:
    """A person's consult history (for the cohort application and the facilitator's view)."""
    return list(db.session.scalars(
        select(Consultation).where(Consultation.participant_id == user.id).order_by(Consultation.start_at.desc())))
