"""Web basics: friendly error pages and JSON errors, CSRF, security headers, cookies, production
safety, caching of signed-in pages, role navigation, health check."""

from __future__ import annotations

import re

import pytest
from flask import abort, request, session
from sqlalchemy import func, select

from retreat import create_app
from retreat.accounts import users as accounts
from retreat.config import load_config
from retreat.extensions import limiter
from retreat.models import User
from tests import factories
from tests.conftest import base_config

STRONG_KEY = "Vb3q9ZpL2xT7mK4wN8cR1yH6jD5sF0gA-uE_iO"
LIVE_STRIPE = {"STRIPE_API_BASE": "https://api.stripe.com", "STRIPE_SECRET_KEY": "sk_live_x",
               "STRIPE_PUBLISHABLE_KEY": "pk_live_x"}


@pytest.fixture(scope="module")
def probe_app():
    """An app with test-only routes that fail on purpose (no database access)."""
    app = create_app(base_config(RATELIMIT_ENABLED=True, MAX_CONTENT_LENGTH=2048))

    for prefix in ("", "/api"):
        name = prefix.strip("/") or "html"

        app.add_url_rule(f"{prefix}/_probe/boom", f"boom_{name}", lambda: 1 / 0)
        app.add_url_rule(f"{prefix}/_probe/bad", f"bad_{name}", lambda: abort(400))
        app.add_url_rule(f"{prefix}/_probe/forbidden", f"forbidden_{name}", lambda: abort(403))
        app.add_url_rule(f"{prefix}/_probe/limited", f"limited_{name}", limiter.limit("1 per minute")(lambda: "ok"))
        app.add_url_rule(f"{prefix}/_probe/upload", f"upload_{name}", lambda: str(len(request.form)),
                         methods=["POST"])
    return app


def friendly_page(r, status: int, title: str):
    assert r.status_code == status
    assert r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in page
    assert "Reference:" in page and r.headers["X-Request-ID"] in page
    assert "Traceback" not in page and "ZeroDivisionError" not in page
    assert "Go to the home page" in page


def json_error(r, status: int):
    assert r.status_code == status
    assert r.is_json and isinstance(r.get_json()["error"], str)
    return r.get_json()


@pytest.mark.parametrize("path,status,title", [
    ("/_probe/bad", 400, "Bad request"),
    ("/_probe/forbidden", 403, "Not allowed"),
    ("/no/such/page", 404, "Not found"),
    ("/account/logout", 405, "Method not allowed"),  # POST only
    ("/_probe/boom", 500, "Something went wrong"),
])
def test_friendly_html_error_pages(probe_app, path, status, title):
    c = probe_app.test_client()
    friendly_page(c.get(path), status, title)
    if path.startswith("/_probe"):
        json_error(c.get("/api" + path), status)


def test_json_errors_under_api(probe_app):
    c = probe_app.test_client()
    assert json_error(c.get("/api/v1/nope"), 404) == {"error": "We could not find that page. It may have moved or never existed."}
    r = c.delete("/api/v1/me")
    json_error(r, 405)
    assert "GET" in r.headers["Allow"]


def test_too_large_is_413_page_and_json(probe_app):
    c = probe_app.test_client()
    friendly_page(c.post("/_probe/upload", data={"text": "x" * 5000}), 413, "Too large")
    json_error(c.post("/api/_probe/upload", json={"text": "x" * 5000}), 413)


def test_rate_limited_is_429_page_and_json(probe_app):
    c = probe_app.test_client()
    assert c.get("/_probe/limited").status_code == 200
    r = c.get("/_probe/limited")
    friendly_page(r, 429, "Slow down")
    assert r.headers.get("Retry-After")
    assert c.get("/api/_probe/limited").status_code == 200
    assert "wait a minute" in json_error(c.get("/api/_probe/limited"), 429)["error"]


def test_csrf_missing_token_is_friendly_400_and_changes_nothing(app, make_client, db, monkeypatch):
    admin = make_client("admin", password=None)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    users_before = db.session.scalar(select(func.count()).select_from(User))

    r = admin.post("/admin/settings", data={"require_staff_totp": "y"})
    friendly_page(r, 400, "Bad request")
    assert "form expired" in r.get_data(as_text=True)
    r = admin.post("/admin/users/new", data={"name": "X", "email": "x@example.com", "role": "finance", "tz": "UTC"})
    assert r.status_code == 400
    assert not accounts.staff_totp_required()
    assert db.session.scalar(select(func.count()).select_from(User)) == users_before

    # The real form carries a token, and with it the same POST works.
    page = admin.get("/admin/users/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    r = admin.post("/admin/users/new", data={"csrf_token": token, "name": "X", "email": "x@example.com",
                                             "role": "finance", "tz": "UTC"})
    assert r.status_code == 201


SECURITY_PATHS = ["/", "/account/login", "/admin/", "/api/v1/me", "/static/css/app.css", "/healthz", "/nope",
                  "/api/v1/docs"]


@pytest.mark.parametrize("path", SECURITY_PATHS)
def test_security_headers_on_every_response(client, path):
    r = client.get(path)
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in r.headers  # plain HTTP: no HSTS
    r = client.get(path, base_url="https://localhost")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_flags(client, db):
    factories.user("facilitator", email="cookie@example.com")
    r = client.post("/account/login", data={"email": "cookie@example.com", "password": factories.PASSWORD})
    cookie = next(v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_production_cookies_are_secure(monkeypatch):
    monkeypatch.setenv("RETREAT_ENV", "production")
    assert load_config()["SESSION_COOKIE_SECURE"] is True
    monkeypatch.delenv("RETREAT_ENV")
    prod = create_app(base_config(ENV_NAME="production", SECRET_KEY=STRONG_KEY, METRICS_ENABLED=False, **LIVE_STRIPE))
    assert prod.config["SESSION_COOKIE_SECURE"] is True and prod.config["REMEMBER_COOKIE_SECURE"] is True

    @prod.get("/_probe/remember")
    def remember():
        session["seen"] = True
        return "ok"

    cookie = prod.test_client().get("/_probe/remember", base_url="https://localhost").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("overrides", [
    {"SECRET_KEY": "short-secret"},
    {"SECRET_KEY": "a" * 32},
    {"SECRET_KEY": STRONG_KEY, "SECRET_KEY_GENERATED": True},
    {"SECRET_KEY": "insecure-default-" + STRONG_KEY},
    {"SECRET_KEY": STRONG_KEY, "CLINICAL_DATA_KEYS": "", "FIELD_ENCRYPTION_KEYS": ""},
])
def test_production_refuses_weak_secrets(overrides):
    with pytest.raises(RuntimeError, match="Refusing to start: (SECRET_KEY|CLINICAL_DATA_KEYS) "):
        create_app(base_config(ENV_NAME="production", **{**LIVE_STRIPE, **overrides}))


def test_signed_in_pages_are_not_cached(make_client, client):
    facilitator = make_client("facilitator", password=None)
    r = facilitator.get("/facilitator/")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")


def nav_of(page: str) -> str:
    return page.split('<nav aria-label="Main"', 1)[1].split("</nav>", 1)[0]


def test_navigation_shows_only_the_roles_links(make_client, client):
    admin_nav = nav_of(make_client("admin", password=None).get("/admin/").get_data(as_text=True))
    for label in ("Users", "Organisations", "Audit log", "Settings", "Sign out"):
        assert label in admin_nav
    assert "Finance" not in admin_nav and "Clearance queue" not in admin_nav

    fac_nav = nav_of(make_client("facilitator", password=None).get("/facilitator/").get_data(as_text=True))
    assert "Today" in fac_nav and "Sign out" in fac_nav
    for label in ("Users", "Audit log", "Settings", "Finance", "Clearance queue", "My retreat"):
        assert label not in fac_nav

    anon_nav = nav_of(client.get("/").get_data(as_text=True))
    assert "Sign in" in anon_nav and "Sign out" not in anon_nav and "Audit log" not in anon_nav


def test_healthz_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


def test_healthz_unavailable_without_database():
    # No `db`/`client` fixture here: those bind the session to the working test database.
    down = create_app(base_config(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/x",
                                  SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}}))
    r = down.test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json() == {"status": "unavailable", "error": "database unreachable"}
