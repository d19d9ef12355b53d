"""What the view layer hands to the rules: who acts, and from where.

Rules never read ``request``; a view builds a ``RequestContext`` and passes it in. ``Actor`` is
the shape of a signed-in person as the lower layers (audit, messaging) use it, so that they need
not import ``retreat.accounts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RequestContext:
    """Who and where, handed to services by the view layer (services never read ``request``)."""

    ip: str | None = None
    request_id: str | None = None


class Actor(Protocol):
    """A person acting or receiving a message (``retreat.accounts.models.User`` is one)."""

    id: int
    email: str
    role: str
    name: str
    tz: str
