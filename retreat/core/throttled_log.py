"""A warning logged at most once per interval per key: a dependency that is down for an hour
writes a line now and then, not one per request.

    throttled_log.warning(log, "redis-down", "Redis unreachable (%s); counting in the database", err)

The first call for a key logs; later calls within ``every`` seconds (default 60) are counted and
the next line that gets through says how many were left out. Per process, thread-safe.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic

_lock = threading.Lock()
_last: dict[str, float] = {}
_skipped: dict[str, int] = {}


def warning(logger: logging.Logger, key: str, message: str, *args, every: float = 60.0) -> bool:
    """Log ``message % args`` at WARNING unless ``key`` was logged less than ``every`` seconds ago.
    Returns whether it was logged."""
    now = monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < every:
            _skipped[key] = _skipped.get(key, 0) + 1
            return False
        _last[key] = now
        skipped = _skipped.pop(key, 0)
    if skipped:
        message = f"{message} ({skipped} similar warnings in the last {every:g} s not logged)"
    logger.warning(message, *args)
    return True


def reset(key: str | None = None) -> None:
    """Forget when ``key`` (or every key) was last logged: the next warning logs at once."""
    with _lock:
        if key is None:
            _last.clear()
            _skipped.clear()
        else:
            _last.pop(key, None)
            _skipped.pop(key, None)
