"""Rendering finance documents (receipts, credit notes, statements) as a page or a PDF.

One template per document (``documents/finance_document.html``, ``documents/statement.html``) is
included by the page (``documents/page.html``, inside the site layout) and by the PDF
(``documents/pdf.html``, rendered by WeasyPrint through ``web.pdf``), so both say the same thing.
Access is checked by the views (the participant's own, or finance); this module only renders.
Dates are in the participant's time zone: the document is theirs.
"""

from __future__ import annotations

from flask import render_template

from retreat.cohorts.models import Enrollment
from retreat.payments import documents, statements
from retreat.payments.document_models import DocumentKind, FinanceDocument
from retreat.timeutil import now_utc
from retreat.web.pdf import pdf_response

DOCUMENT = "documents/finance_document.html"
STATEMENT = "documents/statement.html"


def _document_context(doc: FinanceDocument) -> dict:
    enr = doc.enrollment
    entry = doc.ledger_entry
    original = None
    if doc.kind == DocumentKind.RECEIPT:
        payment = doc.payment
        kind = payment.kind if payment is not None else "payment"
        description = f"{kind.capitalize()} payment"
        reference = payment.stripe_payment_intent_id if payment is not None else entry.stripe_object_id
    else:
        refund = doc.refund
        description = f"Refund — {refund.reason}" if refund is not None and refund.reason else "Refund"
        reference = (refund.stripe_refund_id if refund is not None else None) or entry.stripe_object_id
        if doc.payment_id is not None:
            original = documents.for_payment(doc.payment_id)
    return {"doc": doc, "entry": entry, "person": enr.participant, "cohort": enr.cohort,
            "tz": enr.participant.tz or "UTC", "description": description[:300], "reference": reference,
            "original": original, "title": f"{doc.title} {doc.number}"}


def document(doc: FinanceDocument, *, pdf: bool, pdf_url: str = "", back_url: str = ""):
    ctx = _document_context(doc)
    if pdf:
        return pdf_response(render_template("documents/pdf.html", body=DOCUMENT, **ctx), f"{doc.number}.pdf")
    return render_template("documents/page.html", body=DOCUMENT, pdf_url=pdf_url, back_url=back_url, **ctx)


def statement(enr: Enrollment, *, pdf: bool, pdf_url: str = "", back_url: str = ""):
    st = statements.build(enr, now=now_utc())
    ctx = {"st": st, "person": enr.participant, "cohort": enr.cohort, "tz": enr.participant.tz or "UTC",
           "title": f"Statement — {enr.cohort.title}"}
    if pdf:
        return pdf_response(render_template("documents/pdf.html", body=STATEMENT, **ctx), f"statement-{enr.id}.pdf")
    return render_template("documents/page.html", body=STATEMENT, pdf_url=pdf_url, back_url=back_url, **ctx)
