"""Receipts, credit notes and statements (issue #18 item 2): pages and PDFs from one template,
read back with pypdf; the participant's own only (another participant 404, staff outside finance
403); finance reads them all; the receipt email links to the sign-in-protected page."""

from __future__ import annotations

import io
from datetime import timedelta

from pypdf import PdfReader
from sqlalchemy import select

from retreat.extensions import db as _db
from retreat.messaging.models import OutboxMessage
from retreat.payments import documents, legal, receipts
from retreat.payments.models import LedgerType, PriceOverride
from tests import factories
from tests import finance_helpers as fh
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting

NOW = fh.NOW


def _pdf_text(resp) -> str:
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Cache-Control"] == "no-store"
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(resp.data)).pages)


def _world(db):
    admin = factories.user("admin", password=None)
    legal.save(legal.validate(legal_name="Mountain Stillness Retreats LLC", address="12 Aspen Way\nBoulder, CO 80302",
                              tax_id="EIN 12-3456789", footer="Thank you for your trust."), actor=admin)
    c = fh.cohort()
    enr = fh.seated(c)  # deposit $500.00: receipt 1
    _db.session.add(PriceOverride(enrollment_id=enr.id, price_minor=400000, currency="USD", reason="scholarship"))
    p = fh.pay(enr, 120000, at=NOW + timedelta(days=1))  # receipt 2
    fh.entry(enr, LedgerType.REFUND, -20000, payment=p, at=NOW + timedelta(days=2))  # credit note 1
    fh.entry(enr, LedgerType.DISCOUNT, -10000, at=NOW + timedelta(days=2))
    _db.session.commit()
    docs = documents.of_enrollment(enr.id)
    return enr, docs


def test_participant_downloads_receipt_credit_note_and_statement(app, db):
    enr, docs = _world(db)
    receipt, credit = docs[1], docs[2]

    client = signed_in(app, enr.participant)
    page = client.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert receipt.number in page and credit.number in page and "Statement PDF" in page

    view = client.get(f"/me/payments/{enr.id}/documents/{receipt.id}")
    assert view.status_code == 200 and view.headers["Cache-Control"].startswith("no-store")
    html = view.get_data(as_text=True)
    assert "Receipt" in html and receipt.number in html and "$1,200.00" in html and "EIN 12-3456789" in html

    text = _pdf_text(client.get(f"/me/payments/{enr.id}/documents/{receipt.id}.pdf"))
    assert receipt.number in text and "Mountain Stillness Retreats LLC" in text and "$1,200.00" in text
    assert "Balance payment" in text and enr.participant.name in text

    text = _pdf_text(client.get(f"/me/payments/{enr.id}/documents/{credit.id}.pdf"))
    assert "Credit note" in text and credit.number in text and "$200.00" in text
    assert f"Receipt {receipt.number}" in text  # what it refunds

    text = _pdf_text(client.get(f"/me/payments/{enr.id}/statement.pdf"))
    # price 4,500 - scholarship 500 - discount 100 = 3,900; paid 500 + 1,200 - 200 = 1,500; balance 2,400
    for figure in ("$4,500.00", "−$500.00", "-$100.00", "$3,900.00", "$1,500.00", "$2,400.00", "-$200.00",
                   docs[0].number, receipt.number, credit.number, "Mountain Stillness Retreats LLC"):
        assert figure in text, figure
    html = client.get(f"/me/payments/{enr.id}/statement").get_data(as_text=True)
    assert "$2,400.00" in html and "Scholarship" in html


def test_another_participant_gets_404_and_staff_outside_finance_403(app, db):
    enr, docs = _world(db)
    other_enr, _ = _world(db)
    doc = docs[1]
    stranger = signed_in(app, other_enr.participant)
    for path in (f"/me/payments/{enr.id}/documents/{doc.id}", f"/me/payments/{enr.id}/documents/{doc.id}.pdf",
                 f"/me/payments/{enr.id}/statement", f"/me/payments/{enr.id}/statement.pdf",
                 # their own enrollment in the URL, someone else's document id: still nothing
                 f"/me/payments/{other_enr.id}/documents/{doc.id}", f"/me/payments/{other_enr.id}/documents/{doc.id}.pdf"):
        assert stranger.get(path).status_code == 404, path
    facilitator = signed_in(app, factories.user("facilitator", password=None))
    for path in (f"/me/payments/{enr.id}/documents/{doc.id}.pdf", f"/finance/documents/{doc.id}.pdf",
                 f"/finance/payments/enrollments/{enr.id}/statement.pdf"):
        assert facilitator.get(path).status_code == 403, path
    assert signed_in(app, None).get(f"/me/payments/{enr.id}/documents/{doc.id}.pdf").status_code in (302, 401)


def test_finance_reads_every_document_and_statement(app, db):
    enr, docs = _world(db)
    finance = signed_in(app, factories.user("finance", password=None))
    page = finance.get(f"/finance/payments/enrollments/{enr.id}").get_data(as_text=True)
    assert all(d.number in page for d in docs)
    assert docs[2].number in finance.get(f"/finance/documents/{docs[2].id}").get_data(as_text=True)
    assert docs[2].number in _pdf_text(finance.get(f"/finance/documents/{docs[2].id}.pdf"))
    assert "$2,400.00" in _pdf_text(finance.get(f"/finance/payments/enrollments/{enr.id}/statement.pdf"))
    assert finance.get("/finance/documents/999999").status_code == 404


def test_the_receipt_email_links_to_the_document_page_without_a_token(app, db):
    enr, docs = _world(db)
    receipts.charge(docs[1].payment, 120000, now=NOW)
    msg = _db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f"receipt-charge-{docs[1].payment_id}"))
    assert msg.context["document_number"] == docs[1].number
    assert msg.context["document_url"] == f"http://localhost/me/payments/{enr.id}/documents/{docs[1].id}"
    # the link is the sign-in-protected page: anonymous is sent to sign in, the owner sees it
    path = msg.context["document_url"].removeprefix("http://localhost")
    assert signed_in(app, None).get(path).status_code in (302, 401)
    assert signed_in(app, enr.participant).get(path).status_code == 200


def test_document_pages_cost_the_same_statements_whatever_the_history(app, db):
    enr, docs = _world(db)
    client = signed_in(app, enr.participant)
    paths = [f"/me/payments/{enr.id}/statement", f"/me/payments/{enr.id}/documents/{docs[1].id}", f"/me/payments/{enr.id}"]
    client.get(paths[0])

    def measure():
        _db.session.expunge_all()  # both runs start from an empty identity map, as a request does
        out = []
        for path in paths:
            with counting() as statements:
                assert client.get(path).status_code == 200
            out.append(len(statements))
        return out

    before = measure()
    for i in range(15):
        p = fh.pay(enr, 1000 + i, at=NOW + timedelta(days=3, hours=i))
        fh.entry(enr, LedgerType.REFUND, -100, payment=p, at=NOW + timedelta(days=3, hours=i, minutes=1))
    _db.session.commit()
    assert measure() == before
