"""Who is not ready for the next dosing day: a hook the dosing-day rules register into.

The readiness rule (clearance valid on the day, consents signed, a ride home, ...) belongs to the
dosing-day module, which sits above this package. It registers a source here; the facilitator's
home asks ``not_ready(actor, now)`` and shows the panel only when a source is registered (``None``
otherwise: nothing is promised that nobody computes)::

    from retreat.cohorts import readiness
    readiness.register(my_not_ready)   # fn(actor, now) -> Batch of NotReady

A source returns a ``retreat.core.pagination.Batch`` of ``NotReady`` rows for the cohorts on the
actor's team (``retreat.cohorts.team``), each naming what is missing (no clinical detail).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from retreat.core.context import Actor
from retreat.core.pagination import Batch


@dataclass(frozen=True)
class NotReady:
    enrollment_id: int
    participant_name: str
    cohort_title: str
    session_starts_at: datetime
    missing: tuple[str, ...]  # e.g. ("ride home", "consent"); never a clinical detail
    url: str  # where the work is done


Source = Callable[[Actor, datetime], Batch]
_SOURCES: list[Source] = []


def register(source: Source) -> Source:
    """Add a source (idempotent); returns it, so it can be used as a decorator."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def unregister(source: Source) -> None:
    if source in _SOURCES:
        _SOURCES.remove(source)


def not_ready(actor: Actor, now: datetime) -> Batch | None:
    """Everyone a registered source reports for ``actor``'s cohorts; None while no source exists."""
    if not _SOURCES:
        return None
    batches = [source(actor, now) for source in _SOURCES]
    return Batch(items=[row for b in batches for row in b.items], total=sum(b.total for b in batches))
