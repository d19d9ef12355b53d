"""PDFs come from HTML with local resources only."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from retreat.web.pdf import html_to_pdf, pdf_response


def test_html_becomes_a_pdf_whose_text_reads_back(app):
    with app.app_context():
        pdf = html_to_pdf("<h1>Receipt R-000001</h1><p>Deposit paid: $500.00</p>")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Receipt R-000001" in text
    assert "$500.00" in text


def test_remote_resources_are_never_fetched(app):
    with app.app_context():
        # The image cannot be fetched: the document still renders, without it.
        pdf = html_to_pdf('<p>Hi</p><img src="http://198.51.100.7/tracker.png">')
    assert pdf.startswith(b"%PDF")


def test_a_pdf_download_is_not_cached(app):
    with app.test_request_context():
        response = pdf_response("<p>x</p>", "statement.pdf")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == 'attachment; filename="statement.pdf"'
    assert response.mimetype == "application/pdf"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://127.0.0.1/x.css"])
def test_fetcher_refuses_files_outside_static(app, url):
    from retreat.web.pdf import _check_local

    with app.app_context(), pytest.raises(ValueError):
        _check_local(url)
