"""PDF documents rendered from the same HTML as their pages (WeasyPrint).

A document's HTML view and its PDF come from one template: render the template to a string, then
pass it here. Fonts and stylesheets are local; nothing is fetched over the network (the URL
fetcher refuses anything that is not a file under the app's static folder).
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, current_app


def _static_root() -> Path:
    return Path(current_app.static_folder or "").resolve()


def _check_local(url: str) -> None:
    """Only files under the static folder may be read while rendering; anything else raises."""
    if url.startswith("file://"):
        target = Path(url[len("file://"):].split("?", 1)[0]).resolve()
        if _static_root() in target.parents:
            return
    raise ValueError(f"PDF rendering fetches local static files only, not {url!r}")


def _fetcher():
    from weasyprint.urls import URLFetcher

    class LocalOnlyFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            _check_local(url)
            return super().fetch(url, headers)

    return LocalOnlyFetcher(allowed_protocols={"file"}, allow_redirects=False)


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    base = Path(current_app.static_folder or ".").resolve().as_uri() + "/"
    return HTML(string=html, base_url=base, url_fetcher=_fetcher()).write_pdf()


def pdf_response(html: str, filename: str) -> Response:
    """A download of the PDF made from `html`, never cached (documents hold personal data)."""
    response = Response(html_to_pdf(html), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
