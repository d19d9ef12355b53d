"""Weak ETags for API lists: ``W/"<sha256 of the serialized JSON body>"``.

``etag_json(body)`` answers 200 with the body and its ETag, or 304 with no body when the request's
``If-None-Match`` holds that tag (or ``*``). The tag is over the exact bytes sent, so any change
in the page (a row, its order, the next cursor) changes it.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

NOT_MODIFIED = "The page is unchanged since the ETag sent in If-None-Match (no body)."
ETAG_HEADER = {"ETag": {"description": "Weak tag of this page; send it back as If-None-Match.",
                        "schema": {"type": "string"}, "example": 'W/"3f2a1b0c9d8e7f6a5b4c"'}}


def weak_etag(payload: bytes) -> str:
    return f'W/"{hashlib.sha256(payload).hexdigest()[:40]}"'


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    opaque = tag[2:]
    for candidate in (c.strip() for c in header.split(",")):
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def etag_json(body) -> object:
    """A JSON response of ``body`` (already serialized to plain types) with a weak ETag; 304 if it matches."""
    payload = current_app.json.dumps(body).encode()
    tag = weak_etag(payload)
    if _matches(request.headers.get("If-None-Match"), tag):
        resp = current_app.response_class(status=304)
    else:
        resp = current_app.response_class(payload + b"\n", mimetype="application/json")
    resp.headers["ETag"] = tag
    return resp
