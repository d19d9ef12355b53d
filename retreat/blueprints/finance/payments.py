"""Finance: overdue balances, disputes, discount approvals, an enrollment's ledger and refunds."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField, TextAreaField

from retreat.blueprints.finance import bp
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.payments import balances, disputes, ledger, pricing, refunds
from retreat.payments import checkout as payments
from retreat.payments.models import DiscountRedemption, Payment, RedemptionStatus, Refund
from retreat.timeutil import now_utc
from retreat.web.forms import DataRequired, Length, refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[DataRequired(message="Enter an amount."), Length(max=20)])
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give a reason for the refund."),
                                                 Length(max=1000)])


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
                           refunds=db.session.scalars(select(Refund).where(Refund.enrollment_id == enr.id)).all(),
                           refundable=max(0, refunds.refundable(enr)), form=form,
                           scholarship=pricing.scholarship_of(enr)), status


@bp.get("/payments/enrollments/<int:enr_id>")
@no_store
def payments_enrollment(enr_id: int):
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    return _enrollment_page(enr, RefundForm())


@bp.post("/payments/enrollments/<int:enr_id>/refund")
def payments_refund(enr_id: int):
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    form = RefundForm()
    if not form.validate_on_submit():
        return _enrollment_page(enr, form, 422)
    try:
        done = refunds.issue_finance_refund(enr, form.amount.data, reason=form.reason.data, now=now_utc(),
                                            actor=acting_user(), ctx=request_context())
    except DomainError as exc:
        (form.reason if exc.field == "reason" else form.amount).errors = [exc.message]
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
