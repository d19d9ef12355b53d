"""The README's nginx example works (issue #22 items 1, 2 and 7): Debian's nginx runs the block
between its markers on a loopback port other than 443, in front of a live app with CSRF on, and
a real sign-in form goes through it. The same block with the old ``$host`` lines refuses the form,
which shows the test can fail. Retries reach another machine for a GET, never for a POST a machine
already received; the access log holds no capability token.
"""

from __future__ import annotations

import html
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from retreat import create_app
from retreat.extensions import db
from tests import factories
from tests.conftest import base_config
from tests.nginx_example import AppServer, free_port, readme_block, require_nginx, start_nginx

REFUSED = "Your form expired or was sent from elsewhere"


@pytest.fixture()
def live_app(committing_app, tmp_path):
    """The app as production runs it behind nginx: CSRF on, one trusted proxy, Secure cookies.
    (``committing_app`` empties the tables afterwards.)"""
    require_nginx()
    app = create_app(base_config(WTF_CSRF_ENABLED=True, TRUSTED_PROXY_HOPS=1, SESSION_COOKIE_SECURE=True,
                                 REMEMBER_COOKIE_SECURE=True, BASE_URL="https://localhost"))
    with app.app_context():
        user = factories.user("participant", email="nginx-walk@example.com")
        db.session.commit()
        app.walker_email = user.email
        db.session.remove()
    with AppServer(app) as server:
        app.server = server
        yield app


def _browser(proxy) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the throwaway certificate; no proxies either
    s.verify = str(proxy.cert)
    s.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"
    return s


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, page[:500]
    return html.unescape(match.group(1))


def sign_in_through(proxy, email: str) -> tuple[requests.Session, requests.Response]:
    """What a browser does: load the login page, post it back with its token, from that page."""
    s = _browser(proxy)
    page_url = f"{proxy.base}/account/login"
    page = s.get(page_url)
    assert page.status_code == 200
    r = s.post(page_url, data={"csrf_token": _csrf(page.text), "email": email, "password": factories.PASSWORD},
               headers={"Referer": page_url, "Origin": proxy.base}, allow_redirects=False)
    return s, r


def test_a_form_posts_through_the_readme_nginx_on_a_port_other_than_443(live_app, tmp_path):
    proxy = start_nginx(tmp_path / "nginx", [live_app.server.address])
    try:
        assert proxy.https_port != 443
        s, r = sign_in_through(proxy, live_app.walker_email)
        assert r.status_code == 302, r.text[:400]
        assert REFUSED not in r.text
        assert r.headers["Location"] == "/home"  # relative: no host or port to get wrong
        settings = s.get(f"{proxy.base}/account/settings", allow_redirects=False)
        assert settings.status_code == 200 and live_app.walker_email in settings.text
        assert "Strict-Transport-Security" in settings.headers  # X-Forwarded-Proto https was believed
        request_id = settings.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id reached the app
        log = proxy.access_log()
        assert f" {request_id} " in log and "GET /account/settings HTTP/1.1" in log
        # plain HTTP on the example's port 80 is sent to HTTPS; an unknown Host never reaches the app
        r = s.get(f"http://localhost:{proxy.http_port}/account/login", allow_redirects=False)
        assert r.status_code == 301 and r.headers["Location"].startswith("https://localhost")
        with pytest.raises(requests.ConnectionError):  # 444: nginx closes the connection unanswered
            s.get(f"http://127.0.0.1:{proxy.http_port}/", headers={"Host": "evil.example"})
    finally:
        proxy.stop()


def test_the_old_host_lines_refuse_every_form(live_app, tmp_path):
    """Shows the test above can fail: ``$host`` drops the port and the CSRF check refuses."""
    old = readme_block().replace("proxy_set_header Host $http_host;", "proxy_set_header Host $host;") \
        .replace("proxy_set_header X-Forwarded-Host $http_host;", "proxy_set_header X-Forwarded-Host $host;")
    assert "$http_host" not in old
    proxy = start_nginx(tmp_path / "nginx-old", [live_app.server.address], block=old)
    try:
        _s, r = sign_in_through(proxy, live_app.walker_email)
        assert r.status_code == 400 and REFUSED in r.text
    finally:
        proxy.stop()


class _Unavailable(BaseHTTPRequestHandler):
    """A web machine that answers 503 to everything (restarting, overloaded) and counts requests."""

    seen: list[str]

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        body = b"unavailable"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture()
def unavailable_machine():
    handler = type("Handler", (_Unavailable,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.seen = handler.seen
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_nginx_retries_a_get_on_another_machine_but_never_a_received_post(live_app, unavailable_machine, tmp_path):
    first = f"127.0.0.1:{unavailable_machine.server_port}"
    proxy = start_nginx(tmp_path / "nginx-retry", [first, f"{live_app.server.address} backup"])
    try:
        s = _browser(proxy)
        page = s.get(f"{proxy.base}/account/login")  # 503 from the first machine: retried on the second
        assert page.status_code == 200 and unavailable_machine.seen == ["GET /account/login"]
        r = s.post(f"{proxy.base}/account/login", allow_redirects=False,
                   data={"csrf_token": _csrf(page.text), "email": live_app.walker_email, "password": factories.PASSWORD},
                   headers={"Referer": f"{proxy.base}/account/login"})
        # the first machine received the POST and failed: nginx does not send it again elsewhere
        assert r.status_code == 503 and unavailable_machine.seen[-1] == "POST /account/login"
        assert len([x for x in unavailable_machine.seen if x.startswith("POST")]) == 1
    finally:
        proxy.stop()


def test_a_post_no_machine_received_goes_to_the_next(live_app, tmp_path):
    dead = f"127.0.0.1:{free_port()}"  # connection refused: the request was never sent
    proxy = start_nginx(tmp_path / "nginx-dead", [dead, f"{live_app.server.address} backup"])
    try:
        _s, r = sign_in_through(proxy, live_app.walker_email)
        assert r.status_code == 302, r.text[:300]
    finally:
        proxy.stop()


def test_the_readme_never_retries_non_idempotent_requests():
    block = readme_block()
    assert "proxy_next_upstream error timeout http_502 http_503;" in block
    assert "non_idempotent" not in re.sub(r"#[^\n]*", "", block)


def test_the_access_log_holds_no_capability_token(live_app, tmp_path):
    """Every route whose path carries a token (found in the app's URL map, not listed by hand) is
    logged with the token replaced, with whatever follows it kept."""
    rules = [r for r in live_app.url_map.iter_rules() if "token" in r.arguments]
    assert len(rules) >= 6, [r.rule for r in rules]
    proxy = start_nginx(tmp_path / "nginx-log", [live_app.server.address])
    try:
        s = _browser(proxy)
        sent = {}
        for i, rule in enumerate(rules):
            token = f"Tok{i}en-{'x' * 20}.{i}_secret"
            path = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m.group(1).strip("'\" "), rule.rule.replace("<token>", token))
            assert "<" not in path, rule.rule
            s.get(f"{proxy.base}{path}?tz=UTC", allow_redirects=False)
            sent[token] = path
        proxy.stop()  # every line written
        log = proxy.access_log()
        for token, path in sent.items():
            assert token not in log, path
            assert path.replace(token, "[redacted]") + "?tz=UTC" in log, path
    finally:
        proxy.stop()
