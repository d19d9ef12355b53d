"""Page caches of each web process.

``anonymous_cache``: a few seconds of cache for anonymous public reads (the cohort page and the
cohorts API).

When a popular cohort opens, hundreds of visitors load the same page in the same minute. For a
visitor with no session at all the page is the same for everyone, so each worker process keeps
the rendered body for ``PUBLIC_CACHE_SECONDS`` (default 5; 0 turns it off; off in tests unless
set). Seats shown may lag by that much; the seat itself is always decided under the cohort's row
lock. Anything personal bypasses the cache: a session cookie, an Authorization header, a view
that touches the session (flash, CSRF) or sets a cookie, any status but 200.

``versioned``: a rendered staff page (or a section of one) stored under the version of the data it shows
(``retreat.core.cache_versions``): any committed change to that data changes the version, so the
section is recomputed on the next view, in every process. ``ROSTER_CACHE_SECONDS`` (default 30;
off in tests unless set) bounds what no write announces: time passing (an offer or a clearance
expiring on its own). ``signed_in_page`` keeps a whole page for one signed-in session: the key
holds the viewer's id, role, name and time zone (what the navigation shows) and the session's
CSRF secret (the page's forms carry a token made from it), and a page is neither served nor kept
while the session has messages to flash.
"""

from __future__ import annotations

from functools import wraps

from flask import current_app, make_response, request, session

from retreat.core.cache import MISSING, Cache

MAX_ENTRIES = 1024
VERSIONED_MAX_ENTRIES = 512
VERSIONED_MAX_BYTES = 16 * 1024 * 1024  # per process; the least recently used pages go first


def _ttl() -> float:
    cfg = current_app.config
    if "PUBLIC_CACHE_SECONDS" not in cfg:
        return 0 if current_app.testing else 5
    return float(cfg["PUBLIC_CACHE_SECONDS"] or 0)


ANONYMOUS = Cache("anonymous pages", max_entries=MAX_ENTRIES, ttl=_ttl)
VERSIONED = Cache("versioned pages", max_entries=VERSIONED_MAX_ENTRIES, max_bytes=VERSIONED_MAX_BYTES, ttl=0)


def clear() -> None:
    ANONYMOUS.clear()
    VERSIONED.clear()


def anonymous_cache(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        ttl = ANONYMOUS.ttl()
        if (not ttl or request.method != "GET" or request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
                or "Authorization" in request.headers):
            return view(*args, **kwargs)
        key = (request.endpoint, request.full_path)
        hit = ANONYMOUS.get(key, ttl=ttl)
        if hit is not MISSING:
            body, status, mimetype = hit
            return current_app.response_class(body, status=status, mimetype=mimetype)
        response = make_response(view(*args, **kwargs))
        if (response.status_code == 200 and not response.direct_passthrough and not session.modified
                and "Set-Cookie" not in response.headers):
            ANONYMOUS.put(key, (response.get_data(), response.status_code, response.mimetype), ttl=ttl)
        return response

    return wrapped


def versioned_ttl(setting: str, default: float) -> float:
    cfg = current_app.config
    if setting not in cfg:
        return 0 if current_app.testing else default
    return float(cfg[setting] or 0)


def versioned_get(key: tuple, version, ttl: float):
    """The value stored under ``key`` at ``version``, or None (absent, stale or expired)."""
    value = VERSIONED.get(key, version, ttl=ttl)
    return None if value is MISSING else value


def versioned_put(key: tuple, version, value, ttl: float) -> None:
    VERSIONED.put(key, value, version, ttl=ttl)


def signed_in_page(key: tuple, version, ttl: float, render):
    """The whole HTML page for ``key`` in this signed-in session, kept under ``version``; else
    ``render()``, which returns (page, status, keep)."""
    from flask_login import current_user

    if not ttl or session.get("_flashes"):  # messages are shown once, on a page made for them
        page, status, _keep = render()
        return page, status
    viewer = (current_user.id, current_user.role, current_user.name, current_user.tz)
    if session.get("csrf_token"):
        page = versioned_get((*key, *viewer, session["csrf_token"]), version, ttl)
        if page is not None:
            return page, 200
    page, status, keep = render()
    if keep and status == 200 and session.get("csrf_token"):  # the page's forms carry a token of this secret
        versioned_put((*key, *viewer, session["csrf_token"]), version, page, ttl)
    return page, status
