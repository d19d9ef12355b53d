"""The domain events of retreat.core.signals: who handles them, in which order, in one transaction."""

from __future__ import annotations

import pytest

from retreat.core import signals
from retreat.core.signals import DomainSignal
from retreat.integration import circles, followups
from retreat.payments import reactions, refunds


def test_the_handlers_and_their_order_are_pinned(app):
    """Every app has the same handlers connected (retreat.subscriptions), in this order."""
    assert signals.enrollment_left.receivers() == [refunds.refund_on_leaving, followups._cancel_on_leaving]
    assert signals.seat_confirmed.receivers() == [circles._invite_on_joining, followups._schedule_on_joining]
    assert signals.seat_cleared.receivers() == [reactions.balance_paid_on_clearance]
    from retreat.cohorts import preparation

    assert signals.cohort_schedule_changed.receivers() == [
        preparation._follow_the_start, circles._on_schedule_changed, reactions.balance_follows_the_start]
    from retreat.clinical import safety

    assert signals.consult_flagged.receivers() == [safety.raise_consult_safety_alert]
    from retreat.integration import discharge

    assert signals.participant_discharged.receivers() == [discharge._on_discharge]


def test_handlers_run_by_order_not_by_connection_and_twice_connected_runs_once():
    sig = DomainSignal("test-signal", "a test")
    calls = []

    @sig.connect(order=20)
    def second(sender, **kw):
        calls.append(("second", sender, kw))

    @sig.connect(order=10)
    def first(sender, **kw):
        calls.append(("first", sender, kw))

    sig.connect(order=10)(first)  # connecting the same handler again changes nothing
    sig.send("s", now=1)
    assert calls == [("first", "s", {"now": 1}), ("second", "s", {"now": 1})]
    with pytest.raises(ValueError):
        sig.connect(order=10)(lambda sender, **kw: None)


def test_a_failing_handler_stops_the_senders_change():
    sig = DomainSignal("test-failing", "a test")
    ran = []

    @sig.connect(order=1)
    def boom(sender, **kw):
        raise RuntimeError("handler failed")

    @sig.connect(order=2)
    def after(sender, **kw):
        ran.append(sender)

    with pytest.raises(RuntimeError):
        sig.send("s")
    assert ran == []
