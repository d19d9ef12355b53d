"""Browser tests assert with Playwright's waiting `expect(...)`, never `assert locator.is_visible()`:
is_visible() answers at once, so right after a click it may read the page before the navigation
(CI failed on exactly that, twice)."""

from __future__ import annotations

import re
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
NOT_WAITING = re.compile(r"^\s*assert\b.*\.is_visible\(\)", re.M)


def test_browser_tests_wait_for_what_they_assert():
    offenders = [f"{p.name}:{s[:m.start()].count(chr(10)) + 1}" for p in sorted(E2E.glob("test_*.py"))
                 for s in [p.read_text()] for m in NOT_WAITING.finditer(s)]
    assert offenders == [], f"use expect(locator).to_be_visible() instead: {offenders}"
