"""A facilitator's consults in a time window (their home's "today" panel)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat.consults.models import Consultation, ConsultStatus
from retreat.core.pagination import Batch, first_of


def booked_between(facilitator_id: int, start: datetime, end: datetime, *, limit: int = 10) -> Batch:
    """Booked consults of ``facilitator_id`` starting in [start, end), soonest first."""
    return first_of(select(Consultation).where(
        Consultation.facilitator_id == facilitator_id, Consultation.status == ConsultStatus.BOOKED.value,
        Consultation.start_at >= start, Consultation.start_at < end)
        .order_by(Consultation.start_at, Consultation.id), limit=limit)
