"""The one cache helper: in-process, thread-safe, least recently used, bounded by entries and bytes,
with a time limit, and keyed by a version.

Every cache of the product is a ``Cache`` (the slot lists, the finance reports, the page caches and
the staff two-factor setting); none keeps its own dictionary and lock. A value stored with a
``version`` is only served to a reader asking for that same version: where the data is shared by
processes, the version is a change counter read from the database (``retreat.core.cache_versions``,
or a row's own counter such as ``ConsultSettings.slots_version``) that every write bumps in its
own transaction, so no process serves a value after the change committed. The time limit bounds
what no write announces (time passing, rows written by raw SQL).

``ttl`` may be a number or a function of no arguments (read on each call, so a cache can follow
the app's configuration); a time limit of 0 turns the cache off (nothing is kept or served).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MISSING: Any = object()


def size_of(value) -> int:
    """A cheap estimate of the bytes a value keeps alive (text and bytes exactly, tuples summed)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, tuple):
        return sum(size_of(v) for v in value)
    return 64


class Cache:
    """``max_entries`` values at most (and ``max_bytes`` of them by ``size_of``, when given); the least
    recently used go first."""

    def __init__(self, name: str, *, max_entries: int, ttl: float | Callable[[], float],
                 max_bytes: int | None = None):
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, Any, Any, int]] = OrderedDict()
        self.bytes = 0

    def ttl(self) -> float:
        ttl = self._ttl() if callable(self._ttl) else self._ttl
        return float(ttl or 0)

    def get(self, key: Hashable, version: Any = None, *, ttl: float | None = None):
        """The value stored under ``key`` at ``version``, or ``MISSING`` (absent, another version, expired)."""
        if not (self.ttl() if ttl is None else ttl):
            return MISSING
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[1] != version or hit[0] <= time.monotonic():
                return MISSING
            self._entries.move_to_end(key)
            return hit[2]

    def put(self, key: Hashable, value: Any, version: Any = None, *, ttl: float | None = None) -> None:
        ttl = self.ttl() if ttl is None else ttl
        if not ttl:
            return
        size = size_of(value) if self.max_bytes is not None else 0
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[3]
            self._entries[key] = (time.monotonic() + ttl, version, value, size)
            self.bytes += size
            while self._entries and (len(self._entries) > self.max_entries
                                     or (self.max_bytes is not None and self.bytes > self.max_bytes)):
                self.bytes -= self._entries.popitem(last=False)[1][3]

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], version: Any = None, *,
                       ttl: float | None = None):
        """The cached value, else ``compute()`` (stored under ``version``). Two threads missing at once
        both compute; the last one's value stays (computing is idempotent)."""
        ttl = self.ttl() if ttl is None else ttl
        value = self.get(key, version, ttl=ttl)
        if value is MISSING:
            value = compute()
            self.put(key, value, version, ttl=ttl)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
