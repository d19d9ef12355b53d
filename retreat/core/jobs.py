"""The scheduler's registry: each domain registers its periodic jobs here, by function reference.

A job is ``func(now)``: a rule that does what is due at ``now`` and returns (the scheduler commits
once after it, or rolls back and logs). Registering by reference means a renamed or removed
function breaks at import, not at three in the morning::

    from retreat.core import jobs
    jobs.register("seats.expire_holds", sweep_expired_holds, seconds=30)

``retreat.subscriptions`` imports every registering module, so the app factory sees all jobs;
``retreat.scheduler`` runs them (APScheduler) and holds no business state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

_REGISTRY: dict[str, PeriodicJob] = {}
_stopping = threading.Event()


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: Callable[[datetime], object]
    seconds: int | None  # None: DISPATCH_INTERVAL_SECONDS


def register(name: str, func: Callable[[datetime], object], *, seconds: int | None = None) -> Callable:
    """Run ``func(now)`` every ``seconds`` (default: ``DISPATCH_INTERVAL_SECONDS``). Idempotent per
    name; returns ``func``."""
    if seconds is not None and seconds <= 0:
        raise ValueError("a periodic job needs a positive interval")
    if not callable(func):
        raise TypeError(f"job {name!r}: {func!r} is not callable")
    _REGISTRY[name] = PeriodicJob(name, func, seconds)
    return func


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> dict[str, PeriodicJob]:
    return dict(_REGISTRY)


def stopping() -> bool:
    """True once shutdown started: long jobs finish their current batch and return."""
    return _stopping.is_set()


def request_stop() -> None:
    _stopping.set()


def reset_stop() -> None:
    _stopping.clear()
