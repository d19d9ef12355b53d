"""Opening an emailed capability link the way a browser does (issue #22 item 2).

The link's request checks its token and answers 303 to an address without it (the token is kept in
the session cookie); ``open_link`` asserts exactly that and returns the token-free address.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LINK = re.compile(r"^/(?:account/reset-password|account/verify-email|consult/manage|consult/claim|follow-up"
                  r"|unsubscribe)/([^/?#]+)")


def token_of(path: str) -> str:
    match = LINK.match(urlsplit(path).path)
    assert match, f"{path} is not a capability link"
    return match.group(1)


def open_link(client, path: str) -> str:
    """GET the emailed ``path``; returns where it sends the browser (path and query), token-free."""
    token = token_of(path)
    r = client.get(path)
    assert r.status_code == 303, (path, r.status_code, r.get_data(as_text=True)[:300])
    assert r.headers["Referrer-Policy"] == "no-referrer"
    location = r.headers["Location"]
    assert token not in location and not urlsplit(location).netloc, location
    return location


def follow_link(client, path: str, **kw):
    """Open ``path`` and then the page it leads to; that page's address and body hold no token."""
    token = token_of(path)
    page_url = open_link(client, path)
    r = client.get(page_url, **kw)
    assert r.headers.get("Referrer-Policy") == "no-referrer", page_url
    assert token not in r.headers.get("Location", "")
    return page_url, r
