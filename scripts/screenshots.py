"""Screenshots of every role's main pages at 1280 and 390 px, from a running app.

    python scripts/screenshots.py http://127.0.0.1:5114 [--out /tmp/shots-ui] [--roles facilitator,admin]

Signs in as each demo role (<role>@demo.retreat), visits the pages of its main menu (and a few
pages one click deeper: a cohort's roster, a session), and saves full-page PNGs named
<role>-<page>-<width>.png. For each page it prints whether the page or a table in it is wider than
the window (the table-fit check of issue #20 item 2), so the run doubles as a layout report.
Uses the system chromium (/usr/bin/chromium); never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "retreat-demo-2026"
ROLES = ("anonymous", "participant", "facilitator", "provider", "finance", "admin")
WIDTHS = (1280, 390)
# Pages one click deeper than the menu: role -> [(page to look on, first link to follow matching, suffixes)].
# A start of None looks on the page the previous step found.
DEEPER = {
    "facilitator": [("/facilitator/cohorts", r"^/facilitator/cohorts/\d+$", ("", "/roster")),
                    (None, r"^/facilitator/sessions/\d+", ("",))],
    "participant": [("/me/enrollments", r"^/me/enrollments/\d+$", ("",))],
    "provider": [("/provider/", r"^/provider/(participants|referrals|intakes)/\d+", ("",))],
    "admin": [("/admin/users", r"^/admin/users/\d+$", ("",))],
}
ANON_PAGES = ["/", "/retreats", "/consult", "/account/login"]

MEASURE = """() => {
  const wraps = Array.from(document.querySelectorAll('.table-wrap')).map(w => {
    const t = w.querySelector('table');
    return {scroller: w.classList.contains('is-scroller'), table: t ? Math.round(t.getBoundingClientRect().width) : 0,
            wrap: w.clientWidth};
  });
  return {doc: document.documentElement.scrollWidth, win: window.innerWidth, wraps};
}"""


def slug(path: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    return s or "home"


def menu_paths(page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("#main-menu a[href]", "els => els.map(e => e.getAttribute('href'))")
    out: list[str] = []
    for h in hrefs:
        p = urlparse(h)
        if p.netloc and p.netloc != urlparse(base).netloc:
            continue
        path = p.path or "/"
        if path not in out and not path.endswith((".csv", ".pdf", "/logout")):
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the running app, e.g. http://127.0.0.1:5114")
    ap.add_argument("--out", default="/tmp/shots-ui")
    ap.add_argument("--roles", default=",".join(ROLES))
    ap.add_argument("--no-shots", action="store_true", help="only print the layout report")
    args = ap.parse_args(argv)
    base = args.base.rstrip("/")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    too_wide = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for role in args.roles.split(","):
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                                          timezone_id="Europe/Berlin")
            page = context.new_page()
            page.set_default_timeout(15_000)
            if role != "anonymous":
                page.goto(base + "/account/login")
                page.get_by_label("Email").fill(f"{role}@demo.retreat")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
                paths = menu_paths(page, base)
            else:
                paths = list(ANON_PAGES)
            found = None
            for start, pattern, suffixes in DEEPER.get(role, []):
                start = start or found
                if not start:
                    continue
                page.goto(base + start)
                hrefs = page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))")
                match = next((urlparse(h).path for h in hrefs if re.search(pattern, urlparse(h).path)), None)
                if match:
                    found = match
                    paths.extend(match + s for s in suffixes if match + s not in paths)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for path in paths:
                    response = page.goto(base + path)
                    if response is None or "html" not in (response.headers.get("content-type") or ""):
                        continue
                    m = page.evaluate(MEASURE)
                    wide_tables = [w for w in m["wraps"] if w["scroller"]]
                    flag = "WIDE" if m["doc"] > m["win"] or wide_tables else "ok"
                    too_wide += flag != "ok"
                    name = f"{role}-{slug(path)}-{width}.png"
                    if not args.no_shots:
                        page.screenshot(path=str(out / name), full_page=True)
                    print(f"{flag:4} {role:11} {width:4} {path:45} doc={m['doc']} tables={m['wraps']} {name}")
            context.close()
        browser.close()
    print(f"{too_wide} page views wider than the window or with a sideways-scrolling table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
