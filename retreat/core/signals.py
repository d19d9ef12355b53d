"""The few domain events that cross a layer, as blinker signals.

A lower domain sends; a higher one subscribes (a "not cleared" decision in ``clinical`` plans the
refund in ``payments``; leaving a cohort in ``cohorts`` cancels the follow-ups in ``integration``).
Handlers run synchronously, inside the sender's transaction, in the order of their ``order``
number (lowest first; ``tests/unit/test_signals.py`` pins it), so the sender's change and every
reaction commit together or not at all. A handler that raises aborts the sender's change.

The subscribing modules are imported by ``retreat.subscriptions``, which the app factory imports,
so every app (web, scheduler, CLI, tests) has the same handlers connected.
"""

from __future__ import annotations

from collections.abc import Callable

from blinker import Namespace

_NAMESPACE = Namespace()


class DomainSignal:
    """A named blinker signal whose receivers run in a fixed order."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.signal = _NAMESPACE.signal(name, doc)
        self._order: dict[Callable, int] = {}

    def connect(self, *, order: int) -> Callable[[Callable], Callable]:
        """Decorator: subscribe ``fn(sender, **kwargs)``, run at position ``order``."""

        def decorator(fn: Callable) -> Callable:
            if fn in self._order:
                return fn
            if order in self._order.values():
                raise ValueError(f"{self.name}: two handlers at order {order}")
            self._order[fn] = order
            self.signal.connect(fn, weak=False)
            return fn

        return decorator

    def receivers(self) -> list[Callable]:
        """The connected handlers, in the order they run."""
        return sorted(self._order, key=self._order.__getitem__)

    def send(self, sender, **kwargs) -> None:
        for fn in self.receivers():
            fn(sender, **kwargs)


enrollment_left = DomainSignal(
    "enrollment-left",
    "An enrollment reached an exit status (withdrawn, declined, cancelled, not cleared...) and its "
    "seat, hold, offer and waitlist place are gone. sender: Enrollment; now, actor.")
seat_confirmed = DomainSignal(
    "seat-confirmed",
    "An enrollment's seat was confirmed (the deposit was paid). sender: Enrollment; now.")
seat_cleared = DomainSignal(
    "seat-cleared",
    "An enrollment whose seat was confirmed before clearance (the cohort takes the deposit first) "
    "was cleared and moved on to deposit_paid; whoever knows what is left to pay moves it further. "
    "sender: Enrollment; now, actor.")
cohort_schedule_changed = DomainSignal(
    "cohort-schedule-changed",
    "A cohort's dates, time zone or sessions changed. sender: Cohort; now, removed_session (the "
    "session deleted, if that was the change), previous_start (where the cohort started before, "
    "when its dates moved).")
consult_flagged = DomainSignal(
    "consult-flagged",
    "A consult was booked with a pre-screen answer that needs a safety follow-up. sender: "
    "Consultation; now.")

participant_discharged = DomainSignal(
    "participant-discharged",
    "The partner provider signed off a participant's discharge from a dosing session (clinical "
    "details stay in clinical; this says only who and when). sender: Enrollment; "
    "cohort_session_id, discharged_at (timezone-aware UTC), actor.")
webhook_endpoint_disabled = DomainSignal(
    "webhook-endpoint-disabled",
    "An outbound webhook endpoint was disabled because its deliveries kept failing; whoever knows the "
    "admins tells them. sender: WebhookEndpoint; now, reason.")
