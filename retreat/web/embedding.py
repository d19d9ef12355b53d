"""The booking widget's two doors, both opened by the one setting WIDGET_ALLOWED_ORIGINS
(``config.widget_origins``): which websites may frame ``/widget/*`` pages (CSP
``frame-ancestors``; every other page keeps ``'none'`` and ``X-Frame-Options: DENY``), and which
may call the anonymous booking API from a browser (CORS on ``PUBLIC_API_PATHS``).

The public booking API needs no cookie, so a cross-site request carries no authority; still, a
POST whose ``Origin`` is neither this app nor a listed website is refused (403 JSON) before the
view runs, so that only the practice's own pages book from a browser. Requests without ``Origin``
(servers, curl) are not browsers and are not refused. The staff API (bearer tokens) answers no
CORS at all: a token belongs on a server, never in a web page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request

from retreat.config import widget_origins
from retreat.core import urls
from retreat.web.errors import json_error

WIDGET_PATH_PREFIX = "/widget/"
# path -> the methods a browser on a listed website may use (OPTIONS is the preflight).
PUBLIC_API_PATHS = {
    "/api/v1/consultations/slots": ("GET",),
    "/api/v1/consultations": ("POST",),  # GET here is the staff list (token): no CORS
}
PREFLIGHT_MAX_AGE = "600"
FOREIGN_ORIGIN_MESSAGE = ("This website may not book from a browser: its origin is not among the practice's "
                          "allowed widget origins.")


def allowed_origins(app: Flask | None = None) -> tuple[str, ...]:
    app = app or current_app
    return app.extensions["retreat_widget_origins"]


def frame_ancestors() -> str:
    """The CSP frame-ancestors source list for a widget page: the listed origins, or 'none'."""
    return " ".join(allowed_origins()) or "'none'"


def is_widget_page(path: str) -> bool:
    return path.startswith(WIDGET_PATH_PREFIX)


def _own_origins() -> set[str]:
    """This app's origin: the one the request reached, and BASE_URL's."""
    base = urlsplit(urls.base_url())
    return {request.host_url.rstrip("/").lower(), f"{base.scheme}://{base.netloc}".lower()}


def _listed(origin: str | None) -> bool:
    return bool(origin) and origin.lower() in allowed_origins()


def _cors_headers(response, methods: tuple[str, ...]) -> None:
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not _listed(origin):
        return
    h = response.headers
    h["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        h["Access-Control-Allow-Methods"] = ", ".join((*methods, "OPTIONS"))
        h["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        h["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE


def init_app(app: Flask) -> None:
    app.extensions["retreat_widget_origins"] = widget_origins(app.config)

    @app.before_request
    def _widget_api_origin():
        methods = PUBLIC_API_PATHS.get(request.path)
        if methods is None:
            return None
        if request.method == "OPTIONS":  # the preflight: answered here, never counted by a rate limit
            response = current_app.response_class(status=204)
            _cors_headers(response, methods)
            return response
        origin = request.headers.get("Origin")
        if request.method in methods and request.method != "GET" and origin is not None \
                and not _listed(origin) and origin.lower() not in _own_origins():
            return json_error(403, FOREIGN_ORIGIN_MESSAGE, {"origin": [f"{origin} is not allowed."]})
        return None

    @app.after_request
    def _widget_api_cors(response):
        methods = PUBLIC_API_PATHS.get(request.path)
        if methods is not None and request.method != "OPTIONS" and request.method in methods:
            _cors_headers(response, methods)
        return response
