"""Capability tokens out of logged URLs (issue #22 item 2).

Emailed links carry a token in their path (``/account/reset-password/<token>``, ...): whoever reads
it can act as the person it was sent to. The links hand the token to the session on their first
request (``web.capability_links``), but that first request line is still logged. ``redact()``
replaces the path segment after each capability prefix, and the value of any query parameter
named like a token, with ``[redacted]``; gunicorn's access log uses it (``gunicorn.conf.py``), and
so can any other log that writes a URL. It works on a path, a request target or a full URL.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"
# Path prefixes whose next segment is a capability token. /follow-up/answer/<id> is token-free.
CAPABILITY_PREFIXES = ("/account/reset-password/", "/account/verify-email/", "/consult/manage/",
                       "/consult/claim/", "/follow-up/", "/unsubscribe/", "/calendar/")
_PATH = re.compile(
    r"(?P<prefix>" + "|".join(re.escape(p) for p in CAPABILITY_PREFIXES) + r")(?!answer/\d)(?P<token>[^/?#\s]+)")
_QUERY = re.compile(r"(?P<key>[?&;](?:[\w.-]*token|code|key|signature|sig)=)(?P<value>[^&;#\s]*)", re.IGNORECASE)


def redact(text: str | None) -> str | None:
    """``text`` with capability tokens replaced by ``[redacted]`` (None and "" unchanged)."""
    if not text:
        return text
    text = _PATH.sub(lambda m: m.group("prefix") + REDACTED, text)
    if "=" in text:
        text = _QUERY.sub(lambda m: m.group("key") + REDACTED, text)
    return text


def redact_query(query: str | None) -> str | None:
    """A bare query string (no leading ``?``), as WSGI's ``QUERY_STRING``."""
    if not query:
        return query
    return redact("?" + query)[1:]
