"""A crawl of every page each role can reach (issue #16; invariant 7).

From the role's home, follow every same-site link (each URL once, bounded; not sign-out, not
downloads) and submit every GET form as it is shown (its default values). No answer may be a
5xx, and no form as shown may be refused (a filter refusing its own empty fields is a bug).
Runs on the demo seed (retreat/cli/demo.py), inside the test's rolled-back transaction.
"""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urlencode

import pytest

from retreat.accounts import users as accounts
from retreat.cli import demo
from tests.conftest import signed_in
from tests.web.html_forms import parse, same_site_path

MAX_PAGES = 150
PER_ENDPOINT = 3  # each page kind a few times (different ids or filters), not every row of the seed
SKIP_PARTS = ("/logout", "/static/", ".csv", ".pdf", ".ics", ".zip", "/export", "/download", "/api/",
              "/webhooks/", "/unsubscribe")
HOMES = {None: "/", "participant": "/me", "facilitator": "/facilitator", "provider": "/provider",
         "finance": "/finance", "admin": "/admin"}


@pytest.fixture()
def demo_world(app, db):
    demo.seed(online=False)  # deterministic: never a localstripe someone runs on the default port
    db.session.commit()


def _skip(path: str) -> bool:
    return any(part in path for part in SKIP_PARTS)


def _endpoint(app, path: str) -> str:
    try:
        return app.url_map.bind("localhost").match(path.split("?")[0], method="GET")[0]
    except Exception:  # noqa: BLE001 - a 404, a redirect or a POST-only route: counted by its path
        return path.split("?")[0]


def crawl(app, client, start: str, max_pages: int = MAX_PAGES, per_endpoint: int = PER_ENDPOINT) -> dict[str, int]:
    """BFS over links and GET forms as shown (each page kind at most ``per_endpoint`` times);
    returns {url: status}."""
    seen: dict[str, int] = {}
    visits: dict[str, int] = {}
    refused_forms: list[str] = []
    queue = deque([("/", None), (start, None)])
    while queue and len(seen) < max_pages:
        url, form_of = queue.popleft()
        if url in seen or _skip(url):
            continue
        endpoint = _endpoint(app, url)
        if form_of is None and visits.get(endpoint, 0) >= per_endpoint:
            continue
        visits[endpoint] = visits.get(endpoint, 0) + 1
        r = client.get(url)
        seen[url] = r.status_code
        assert r.status_code < 500, f"{url} -> {r.status_code}"
        if form_of is not None and r.status_code in (400, 422):
            refused_forms.append(f"{form_of}: GET form as shown -> {url} {r.status_code}")
        if r.status_code in (301, 302, 303, 307, 308):
            target = same_site_path(r.headers.get("Location", ""))
            if target:
                queue.append((target, None))
            continue
        if "html" not in (r.content_type or ""):
            continue
        links, forms = parse(r.get_data(as_text=True), f"http://localhost{url}")
        for link in links:
            path = same_site_path(link)
            if path and path not in seen:
                queue.append((path, None))
        for form in forms:
            path = same_site_path(form.action)
            if form.method == "get" and path:
                query = urlencode(form.fields)
                queue.append((path.split("?")[0] + (f"?{query}" if query else ""), url))
    assert not refused_forms, "\n".join(refused_forms)
    return seen


def test_crawl_each_role_finds_no_server_error_and_no_refused_form(app, demo_world):
    """One seed for all six roles (the seed is the slow part): anonymous, then each role."""
    for role, home in HOMES.items():
        user = accounts.get_by_email(f"{role}@demo.retreat") if role else None
        seen = crawl(app, signed_in(app, user), home)
        ok = [u for u, s in seen.items() if s == 200]
        assert len(seen) >= 5 and len(ok) >= 3, (role, seen)
        if role == "admin":  # the outbox's message pages and the safety settings are linked and open
            assert any(re.fullmatch(r"/admin/messages/\d+", u) and s == 200 for u, s in seen.items()), seen
            assert seen.get("/admin/settings/safety") == 200
            assert seen.get("/admin/settings/legal") == 200
            assert seen.get("/admin/deletion-requests") == 200
        if role == "participant":  # "My data" is linked; its export pages (skipped as /export) open too
            assert seen.get("/me/data") == 200, seen
            client = signed_in(app, user)
            for path in ("/me/data/export.html", "/me/data/export.json"):
                assert client.get(path).status_code == 200, path
