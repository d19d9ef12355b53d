"""A participant's receipts, credit notes and statements, as pages and PDFs (their own only:
another enrollment's, or a document of another enrollment, is a 404)."""

from __future__ import annotations

from flask import url_for

from retreat.blueprints.participant import bp
from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments.document_models import FinanceDocument
from retreat.web import finance_documents
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, require_object


def _own(enr_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None and enr.participant_id == acting_user().id)
    return enr


def _own_document(enr_id: int, doc_id: int) -> FinanceDocument:
    enr = _own(enr_id)
    doc = db.session.get(FinanceDocument, doc_id)
    require_object(doc is not None and doc.enrollment_id == enr.id)
    return doc


@bp.get("/payments/<int:enr_id>/documents/<int:doc_id>")
@no_store
def payment_document(enr_id: int, doc_id: int):
    doc = _own_document(enr_id, doc_id)
    return finance_documents.document(
        doc, pdf=False, pdf_url=url_for("participant.payment_document_pdf", enr_id=enr_id, doc_id=doc_id),
        back_url=url_for("participant.payments_overview", enr_id=enr_id))


@bp.get("/payments/<int:enr_id>/documents/<int:doc_id>.pdf")
@no_store
def payment_document_pdf(enr_id: int, doc_id: int):
    return finance_documents.document(_own_document(enr_id, doc_id), pdf=True)


@bp.get("/payments/<int:enr_id>/statement")
@no_store
def payment_statement(enr_id: int):
    enr = _own(enr_id)
    return finance_documents.statement(enr, pdf=False,
                                       pdf_url=url_for("participant.payment_statement_pdf", enr_id=enr_id),
                                       back_url=url_for("participant.payments_overview", enr_id=enr_id))


@bp.get("/payments/<int:enr_id>/statement.pdf")
@no_store
def payment_statement_pdf(enr_id: int):
    return finance_documents.statement(_own(enr_id), pdf=True)
