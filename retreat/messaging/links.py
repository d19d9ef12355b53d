"""Links in queued messages follow ``BASE_URL`` to the moment they are sent.

A message is rendered when it is sent, but the links in its context (a page to open, a sealed
reset or manage link, a calendar invite's URL) were written when it was queued, under the
``BASE_URL`` of that moment. ``outbox.enqueue`` records that origin on the row (``link_origin``);
the dispatcher (and the operator's preview) rebase every string that carries it onto the
current ``BASE_URL`` before rendering. So a reminder queued a month before the practice moved
to a new address links to the new one. The unsubscribe link and ``base_url`` in templates are
built at send time anyway.

Rows queued before ``link_origin`` existed (it is NULL) keep their links as written.
"""

from __future__ import annotations

import re
from functools import lru_cache

from retreat.core import urls


def current_origin() -> str | None:
    """The ``BASE_URL`` links are written under now (None outside an app context)."""
    try:
        return urls.base_url()
    except (RuntimeError, KeyError):
        return None


@lru_cache(maxsize=32)
def _pattern(origin: str) -> re.Pattern:
    # The origin itself, ended by a path, query, fragment, the end of the text or a delimiter:
    # "https://a.org" never matches inside "https://a.org.evil.example".
    return re.compile(re.escape(origin.rstrip("/")) + r"(?=[/?#\s\"'<>)\]]|$)")


def rebase(value, old: str | None, new: str | None):
    """``value`` (plain JSON data) with every link under ``old`` moved under ``new``."""
    if not old or not new or old.rstrip("/") == new.rstrip("/"):
        return value
    pattern, target = _pattern(old), new.rstrip("/")
    return _walk(value, lambda text: pattern.sub(lambda _m: target, text))


def _walk(value, fix):
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, fix) for v in value]
    return value
