"""The booking widget embedded in a practice's website, in a real browser: a "practice website"
served by a real http.server on another loopback port pastes the snippet; the frame shows free
times in the browser's zone, books one and shows the confirmation, and follows its height. A page
from an origin that is not in WIDGET_ALLOWED_ORIGINS cannot frame it, nor read the booking API.
axe finds no serious or critical violation in the widget. Screenshots: /tmp/shots-widget/."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from retreat.extensions import db
from retreat.models import Consultation
from tests.e2e.conftest import free_port
from tests.e2e.test_api_tokens_browser import _axe
from tests.e2e.test_consult_browser import _facilitator

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-widget")
HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Example Practice</title>
<style>body{{font-family:Georgia,serif;margin:0;background:#f6f1e9}}header,footer{{background:#34495e;color:#fff;padding:1rem 2rem}}
main{{max-width:60rem;margin:0 auto;padding:1rem}}</style></head>
<body><header><strong>Example Practice</strong> · Home · About · Retreats</header>
<main><h1>Talk with us</h1><p>Pick a time for a free call.</p>
<script src="{app}/widget.js" data-retreat-widget="consult" async></script>
</main><footer>© Example Practice</footer></body></html>"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def websites(live_server, tmp_path):
    """Two practice websites on their own loopback ports: the first one is listed."""
    (tmp_path / "index.html").write_text(HOST_PAGE.format(app=live_server.url))
    servers = []
    for _ in range(2):
        port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(tmp_path)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, f"http://127.0.0.1:{port}"))
    app = live_server.app
    before = app.extensions["retreat_widget_origins"]
    app.extensions["retreat_widget_origins"] = (servers[0][1],)  # as if started with WIDGET_ALLOWED_ORIGINS=it
    yield servers[0][1], servers[1][1]
    app.extensions["retreat_widget_origins"] = before
    for server, _url in servers:
        server.shutdown()


def _shots(page, frame, name):
    SHOTS.mkdir(exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        expect(frame.locator("h1")).to_be_visible()
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_widget_books_inside_a_listed_website(live_server, browser, websites):
    listed, _unlisted = websites
    _facilitator(live_server.app)
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    findings: list[str] = []
    try:
        page.goto(listed + "/index.html")
        frame = page.frame_locator("iframe[title='Book a free consultation']")
        expect(frame.get_by_role("heading", name="Book a free consultation", exact=False)).to_be_visible()
        expect(frame.get_by_label("Times shown in")).to_have_value("Europe/Berlin")  # detected from the browser
        expect(frame.get_by_text("Choose a time (Europe/Berlin)")).to_be_visible()
        first = frame.locator(".widget-slot").first
        expect(first).to_be_visible()
        # The frame grew to its content (postMessage from the app's origin, checked by /widget.js).
        iframe = page.locator("iframe[title='Book a free consultation']")
        expect(iframe).not_to_have_attribute("style", "display: block; width: 100%; border: 0px; min-height: 320px; height: 640px;")
        _shots(page, frame, "times")
        widget_page = next(f for f in page.frames if "/widget/consult" in f.url)
        _axe(widget_page, findings)

        label = first.get_attribute("aria-label")
        first.click()
        expect(frame.get_by_role("heading", name="Your details")).to_be_visible()
        frame.get_by_role("button", name="Book this time").click()  # empty: field errors, nothing booked
        expect(frame.get_by_text("Enter your name", exact=False)).to_be_visible()
        frame.get_by_label("Your name").fill("Wanda Widget")
        frame.get_by_label("Email").fill("wanda@example.com")
        _shots(page, frame, "form")
        _axe(widget_page, findings)
        frame.get_by_role("button", name="Book this time").click()
        expect(frame.get_by_role("heading", name="You're booked")).to_be_visible()
        expect(frame.locator("[data-done-when]")).to_contain_text(label.replace(" at ", " at ", 1))
        _shots(page, frame, "done")
        with live_server.app.app_context():
            c = db.session.scalars(select(Consultation).where(Consultation.guest_email == "wanda@example.com")).one()
            assert c.guest_tz == "Europe/Berlin" and c.guest_name == "Wanda Widget"
            db.session.rollback()
        # The listed website may also read the booking API itself (CORS).
        got = page.evaluate("u => fetch(u).then(r => r.status)",
                            live_server.url + "/api/v1/consultations/slots?start=2030-01-01&end=2030-01-02&tz=UTC")
        assert got == 200
    finally:
        context.close()
    assert findings == []


def test_an_unlisted_website_cannot_frame_the_widget(live_server, browser, websites):
    _listed, unlisted = websites
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
            page.goto(unlisted + "/index.html")
        expect(page.locator("iframe")).to_have_count(1)
        expect(page.frame_locator("iframe").get_by_role("heading")).to_have_count(0)
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "unlisted-blocked.png"), full_page=True)
        refused = page.evaluate("u => fetch(u).then(() => 'read', () => 'blocked')",
                                live_server.url + "/api/v1/consultations/slots?start=2030-01-01&end=2030-01-02&tz=UTC")
        assert refused == "blocked"
    finally:
        context.close()
