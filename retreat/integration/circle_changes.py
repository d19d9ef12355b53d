"""What a re-plan of the circles changed, as participants see it, and the one email that tells them.

``circles.sync_circles`` records a ``CircleChange`` for every change a participant can notice: a
circle added, moved (its time changed), its place changed (place or video link), or cancelled.
Whatever else changes (the facilitator, say) is saved quietly. Someone who already has their
invites gets one ``circles_updated`` email per save listing exactly those changes (not one new
invite per circle); the counts make the facilitator's summary ("2 circles moved, 1 place changed").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from retreat.cohorts.models import Cohort, Enrollment
from retreat.messaging import outbox
from retreat.timeutil import venue_time

ADDED, MOVED, PLACE, REMOVED = "added", "moved", "place", "removed"


@dataclass(frozen=True)
class CircleChange:
    sequence: int
    kinds: frozenset[str]  # ADDED | MOVED | PLACE | REMOVED (a circle can move and change place)
    starts_at: datetime
    old_starts_at: datetime | None = None
    place: str = ""
    session_id: int | None = None  # None once removed
    revision: int = 0
    venue_tz: str | None = None  # the venue's zone of an in-person circle (None: online)

    def line(self, tz: str) -> str:
        """One line of the email, in the participant's time zone (and the venue's, in person)."""
        def when(at: datetime | None) -> str:
            return venue_time(at, self.venue_tz, tz) if at else ""

        title = f"Integration circle {self.sequence}"
        if REMOVED in self.kinds:
            return f"{title} on {when(self.starts_at)} is cancelled."
        if ADDED in self.kinds:
            return f"{title} is new: {when(self.starts_at)}, {self.place}."
        parts = []
        if MOVED in self.kinds:
            parts.append(f"now {when(self.starts_at)} (was {when(self.old_starts_at)})")
        if PLACE in self.kinds:
            parts.append(f"new place: {self.place}")
        return f"{title}: {'; '.join(parts)}."


def summary(changes: list[CircleChange], kept: int = 0) -> str:
    """"2 circles moved, 1 place changed" (or "no circle changed")."""
    counts = [(sum(ADDED in c.kinds for c in changes), "circle added", "circles added"),
              (sum(MOVED in c.kinds for c in changes), "circle moved", "circles moved"),
              (sum(PLACE in c.kinds for c in changes), "place changed", "places changed"),
              (sum(REMOVED in c.kinds for c in changes), "circle removed", "circles removed")]
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]
    return ", ".join(parts) if parts else ("no circle changed" if not kept else "")


def send_update(enr: Enrollment, cohort: Cohort, changes: list[CircleChange], *, portal_url: str,
                now: datetime) -> None:
    """One email to ``enr`` listing ``changes`` (idempotent for the same set of changes)."""
    person = enr.participant
    ident = ",".join(f"{c.sequence}:{sorted(c.kinds)}:{c.session_id}:{c.revision}:{c.starts_at.isoformat()}"
                     for c in changes)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    outbox.enqueue(template="circles_updated", dedupe_key=f"circles-{cohort.id}-enr-{enr.id}-update-{digest}",
                   to_user=person, tz=person.tz, group_key=f"enrollment:{enr.id}", essential=True, now=now,
                   context={"participant_name": person.name, "retreat_title": cohort.retreat.title,
                            "cohort_title": cohort.title, "changes": [c.line(person.tz) for c in changes],
                            "count": len(changes), "portal_url": portal_url})
