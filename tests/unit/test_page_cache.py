"""The per-process page store keeps at most VERSIONED_MAX_BYTES of pages, dropping the least
recently used first, and never serves a page under another version or after its time."""

from __future__ import annotations

from retreat.web import page_cache


def test_pages_beyond_the_byte_budget_go_least_recently_used_first(monkeypatch):
    page_cache.clear()
    monkeypatch.setattr(page_cache.VERSIONED, "max_bytes", 3000)
    try:
        for name in "abc":
            page_cache.versioned_put((name,), 1, name * 1000, 60)
        assert page_cache.versioned_get(("a",), 1, 60) == "a" * 1000  # now the most recently used
        page_cache.versioned_put(("d",), 1, ("t", "d" * 999), 60)
        assert page_cache.versioned_get(("b",), 1, 60) is None  # the least recently used went
        assert page_cache.versioned_get(("a",), 1, 60) and page_cache.versioned_get(("c",), 1, 60)
        assert page_cache.versioned_get(("d",), 1, 60) == ("t", "d" * 999)
        page_cache.versioned_put(("a",), 2, "x" * 10, 60)  # replaced: its old size is given back
        assert page_cache.VERSIONED.bytes == 10 + 1000 + 1 + 999
        assert page_cache.versioned_get(("a",), 1, 60) is None  # another version
        assert page_cache.versioned_get(("a",), 2, 0) is None  # caching off
    finally:
        page_cache.clear()
