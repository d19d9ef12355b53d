"""Finance: overdue balances, disputes, discount approvals, an enrollment's ledger and refunds."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, StringField, TextAreaField

from retreat.blueprints.finance import bp
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.payments import balances, disputes, documents, ledger, pricing, refunds
from retreat.payments import checkout as payments
from retreat.payments.models import DiscountRedemption, Payment, RedemptionStatus, Refund
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.forms import DataRequired, Length, refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[DataRequired(message="Enter an amount."), Length(max=20)])
    reason = TextAreaField("Message to the participant (on their receipt and payments page)",
                           validators=[DataRequired(message="Give a reason for the refund."), Length(max=1000)])
    internal_note = TextAreaField("Internal note (finance only, never shown to the participant)",
                                  validators=[Length(max=refunds.INTERNAL_NOTE_MAX)])


class RefundConfirmForm(RefundForm):
    expected = HiddenField("What could be refunded when confirmed", validators=[DataRequired()])


@bp.get("/payments")
@no_store
def payments_dashboard():
    pending = db.session.scalars(select(DiscountRedemption).where(
        DiscountRedemption.status == RedemptionStatus.PENDING_APPROVAL.value)).all()
    recent = db.session.scalars(select(Payment).order_by(Payment.id.desc()).limit(50)).all()
    return render_template("finance/payments.html", overdue=balances.overdue(now=now_utc()),
                           disputed=disputes.disputed_rows(), pending=pending, recent=recent,
                           form=FlaskForm())


def _enrollment_page(enr: Enrollment, form: RefundForm, status: int = 200):
    return render_template("finance/payment_enrollment.html", enr=enr, q=pricing.quote(enr),
                           entries=ledger.entries(enr.id), history=payments.history(enr),
                           documents=documents.of_enrollment(enr.id),
                           refunds=db.session.scalars(select(Refund).where(Refund.enrollment_id == enr.id)).all(),
                           refundable=max(0, refunds.refundable(enr)), form=form,
                           scholarship=pricing.scholarship_of(enr)), status


@bp.get("/payments/enrollments/<int:enr_id>")
@no_store
def payments_enrollment(enr_id: int):
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    return _enrollment_page(enr, RefundForm())


def _show_refund_error(form: RefundForm, exc: DomainError) -> None:
    field = {"reason": form.reason, "internal_note": form.internal_note}.get(exc.field or "", form.amount)
    field.errors = [exc.message]


@bp.post("/payments/enrollments/<int:enr_id>/refund")
def payments_refund(enr_id: int):
    """Step 1: check the refund and show what it would do (nothing is changed yet)."""
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    form = RefundForm()
    if not form.validate_on_submit():
        return _enrollment_page(enr, form, 422)
    try:
        preview = refunds.finance_refund_preview(enr, form.amount.data, reason=form.reason.data,
                                                 internal_note=form.internal_note.data or "", now=now_utc())
    except DomainError as exc:
        _show_refund_error(form, exc)
        return _enrollment_page(enr, form, exc.status)
    confirm = RefundConfirmForm(formdata=None, data={"amount": form.amount.data, "reason": preview["reason"],
                                                     "internal_note": preview["internal_note"],
                                                     "expected": str(preview["refundable"])})
    return render_template("finance/refund_confirm.html", enr=enr, p=preview, form=confirm)


@bp.post("/payments/enrollments/<int:enr_id>/refund/confirm")
def payments_refund_confirm(enr_id: int):
    """Step 2: issue the refund confirmed on the page step 1 showed."""
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    form = RefundConfirmForm()
    if not form.validate_on_submit() or not (form.expected.data or "").isdigit():
        if not form.errors:
            form.amount.errors = ["The confirmation was incomplete; start the refund again."]
        return _enrollment_page(enr, form, 422)
    try:
        done = refunds.issue_finance_refund(enr, form.amount.data, reason=form.reason.data, now=now_utc(),
                                            actor=acting_user(), ctx=request_context(),
                                            internal_note=form.internal_note.data or "",
                                            expected_refundable=int(form.expected.data))
    except DomainError as exc:
        _show_refund_error(form, exc)
        transaction.discard(f"refund refused: {exc.message}")
        return _enrollment_page(db.session.get(Enrollment, enr_id), form, exc.status)
    flash(f"Refund issued ({len(done)} Stripe refund{'s' if len(done) != 1 else ''}).", "success")
    return redirect(url_for("finance.payments_enrollment", enr_id=enr_id))


@bp.post("/payments/redemptions/<int:red_id>/<decision>")
def payments_redemption(red_id: int, decision: str):
    red = db.session.get(DiscountRedemption, red_id)
    require_object(red is not None)
    if decision not in ("approve", "reject") or not FlaskForm().validate_on_submit():
        abort(400)
    try:
        pricing.decide_redemption(red, approve=decision == "approve", now=now_utc(), actor=acting_user())
        flash("Discount " + ("approved." if decision == "approve" else "rejected."), "success")
    except DomainError as exc:
        refused(exc.message, "error")
    return redirect(url_for("finance.payments_dashboard"))
