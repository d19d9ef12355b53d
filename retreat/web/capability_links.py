"""Capability links: an emailed token is swapped for a cookie on its first request (issue #22).

Whoever holds a reset, email-confirmation, consult manage or claim, check-in or unsubscribe link
can act as the person it was sent to. Such a link's path carries its token, so its request line
is written to every access log it crosses (nginx, gunicorn) and the page's address would travel
on in ``Referer``. So the link's route only checks the token and ``hand_over()``s it: the token
goes into the signed, HttpOnly session cookie (a browser-session cookie, dropped at sign-in and
sign-out) and the answer is a 303 to a token-free address, which reads it back with ``held()``.

- Opening the email's link again works while the token does (people click twice); it is never in
  an address after that first request. A flow that consumes it (a reset) ``drop()``s it.
- Each kind keeps the few most recent tokens under a key naming what they open (a consult's id,
  a follow-up's id), so two bookings in two tabs each keep their own.
- Those pages and the hand-over answer with ``Referrer-Policy: no-referrer`` (``private_page``).
"""

from __future__ import annotations

import functools

from flask import make_response, redirect, session

SESSION_KEY = "links"
PER_KIND = 4  # tokens kept per kind (e.g. consults); the oldest goes first
TOKEN_MAX = 500
NO_REFERRER = "no-referrer"


def _entries(kind: str) -> list[list[str]]:
    links = session.get(SESSION_KEY)
    entries = links.get(kind) if isinstance(links, dict) else None
    return [e for e in entries if isinstance(e, list) and len(e) == 2] if isinstance(entries, list) else []


def keep(kind: str, key: object, token: str) -> None:
    """Hold ``token`` for ``kind``/``key`` in this browser's session (newest last)."""
    if not token or len(token) > TOKEN_MAX:
        raise ValueError("not a capability token")
    key = str(key)
    entries = [e for e in _entries(kind) if e[0] != key] + [[key, token]]
    links = dict(session.get(SESSION_KEY) or {}) if isinstance(session.get(SESSION_KEY), dict) else {}
    links[kind] = entries[-PER_KIND:]
    session[SESSION_KEY] = links


def held(kind: str, key: object = "") -> str | None:
    """The token this browser exchanged for ``kind``/``key``, or None."""
    key = str(key)
    return next((token for k, token in reversed(_entries(kind)) if k == key and isinstance(token, str)), None)


def drop(kind: str, key: object = "") -> None:
    key = str(key)
    entries = _entries(kind)
    if any(e[0] == key for e in entries):
        links = dict(session[SESSION_KEY])
        links[kind] = [e for e in entries if e[0] != key]
        session[SESSION_KEY] = links


def hand_over(kind: str, key: object, token: str, location: str):
    """Hold ``token`` and answer 303 to ``location``, an address without it."""
    keep(kind, key, token)
    response = redirect(location, code=303)
    response.headers["Referrer-Policy"] = NO_REFERRER
    return response


def private_page(view):
    """A page opened through a capability link: its address is never sent as a referrer."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        response.headers["Referrer-Policy"] = NO_REFERRER
        return response

    return wrapped
