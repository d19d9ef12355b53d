"""Finance's view of receipts, credit notes and statements (pages and PDFs)."""

from __future__ import annotations

from flask import url_for

from retreat.blueprints.finance import bp
from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments.document_models import FinanceDocument
from retreat.web import finance_documents
from retreat.web.hooks import no_store
from retreat.web.security import require_object


def _document(doc_id: int) -> FinanceDocument:
    doc = db.session.get(FinanceDocument, doc_id)
    require_object(doc is not None)
    return doc


def _enrollment(enr_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    return enr


@bp.get("/documents/<int:doc_id>")
@no_store
def document(doc_id: int):
    doc = _document(doc_id)
    return finance_documents.document(
        doc, pdf=False, pdf_url=url_for("finance.document_pdf", doc_id=doc_id),
        back_url=url_for("finance.payments_enrollment", enr_id=doc.enrollment_id))


@bp.get("/documents/<int:doc_id>.pdf")
@no_store
def document_pdf(doc_id: int):
    return finance_documents.document(_document(doc_id), pdf=True)


@bp.get("/payments/enrollments/<int:enr_id>/statement")
@no_store
def statement(enr_id: int):
    enr = _enrollment(enr_id)
    return finance_documents.statement(enr, pdf=False, pdf_url=url_for("finance.statement_pdf", enr_id=enr_id),
                                       back_url=url_for("finance.payments_enrollment", enr_id=enr_id))


@bp.get("/payments/enrollments/<int:enr_id>/statement.pdf")
@no_store
def statement_pdf(enr_id: int):
    return finance_documents.statement(_enrollment(enr_id), pdf=True)
