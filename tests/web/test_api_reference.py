"""The API reference (issue #19 item 2): every staff operation is in the OpenAPI document with
its scope and examples, and /api/v1/docs renders it on the server with nothing from another host."""

from __future__ import annotations

import re

STAFF_OPS = [("get", "/api/v1/consultations", "read:consults"),
             ("post", "/api/v1/consultations/{consult_id}/cancel", "write:consults"),
             ("post", "/api/v1/consultations/{consult_id}/reschedule", "write:consults"),
             ("get", "/api/v1/team/cohorts", "read:cohorts"),
             ("get", "/api/v1/enrollments", "read:cohorts"),
             ("get", "/api/v1/cohorts/{cohort_id}/roster", "read:roster")]


def test_staff_operations_are_documented_with_scope_and_examples(app):
    spec = app.extensions["retreat_openapi"].to_dict()
    for method, path, scope in STAFF_OPS:
        op = spec["paths"][path][method]
        assert op["x-required-scope"] == scope and op["security"] == [{"bearerAuth": []}]
        assert op["summary"] and f"Scope: {scope}." in op["description"]
        ok = op["responses"]["200"]["content"]["application/json"]
        assert ok["example"], path
        assert {"401", "403"} <= set(op["responses"])
        if method == "get":
            assert "304" in op["responses"] and "ETag" in op["responses"]["200"]["headers"]
    body = spec["paths"]["/api/v1/consultations/{consult_id}/reschedule"]["post"]["requestBody"]
    assert body["content"]["application/json"]["example"] == {"start": "2026-12-16T18:00:00Z"}
    # the public reads and the anonymous booking still share their paths untouched
    assert "post" in spec["paths"]["/api/v1/consultations"] and "get" in spec["paths"]["/api/v1/consultations"]
    assert spec["paths"]["/api/v1/cohorts"]["get"].get("security") == []


def test_docs_page_renders_the_document_without_other_hosts(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    for _method, path, scope in STAFF_OPS:
        assert f"<code>{path}</code>" in page and f"<code>{scope}</code>" in page
    assert "This token lacks the scope" in page and "If-None-Match" in page
    assert "&#34;guest_email&#34;: &#34;sam@example.com&#34;" in page  # a response example, rendered
    external = [u for u in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page)
                if u.startswith(("http:", "https:", "//")) and not u.startswith("http://localhost")]
    assert external == []
    assert not re.search(r"<script[^>]+src=[\"'](?:https?:)?//", page)
    assert "cdn" not in page.lower()
