"""The calendar subscription feed: ``/calendar/<token>.ics``.

Fetched by calendar apps without cookies: the private token is the key (``accounts.calendar_feeds``).
A revoked or unknown token gets 404 and nothing else. The body carries an ``ETag`` so a calendar
that asks again with ``If-None-Match`` gets a 304; fetches are rate limited per address.
"""

from __future__ import annotations

import hashlib

from flask import Response, abort, current_app, request

from retreat.accounts import calendar_feeds
from retreat.blueprints.public import bp
from retreat.extensions import limiter
from retreat.integration import calendar_feed
from retreat.timeutil import now_utc
from retreat.web import rate_keys


def _limit() -> str:
    return current_app.config.get("CALENDAR_FEED_RATE_LIMIT", "60 per hour")


@bp.get("/calendar/<token>.ics")
@limiter.limit(_limit, key_func=rate_keys.client("calendar-feed"))
def calendar_feed_ics(token: str):
    now = now_utc()
    feed = calendar_feeds.resolve(token, now=now)
    if feed is None:
        abort(404)
    body = calendar_feed.build(feed.user, now=now, practice_name=current_app.config.get("PRACTICE_NAME", "retreat"))
    # DTSTAMP changes on every build; the ETag is of the content without it
    etag = hashlib.sha256(b"\n".join(line for line in body.splitlines() if not line.startswith(b"DTSTAMP"))
                          ).hexdigest()[:32]
    if etag in request.if_none_match:
        resp = Response(status=304)
    else:
        resp = Response(body, mimetype="text/calendar")
        resp.headers["Content-Disposition"] = 'inline; filename="retreat.ics"'
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = "private, max-age=300"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
