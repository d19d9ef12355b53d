"""Participant payment pages: overview and history, checkout (Stripe.js card element), return page
that asks Stripe for the truth, balance in full or in installments, discount codes."""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.validators import Optional

from retreat.blueprints.participant import bp
from retreat.cohorts import enrollment as enrollment_svc
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.payments import (
    autopay,
    autopay_charges,
    documents,
    gateway,
    ledger,
    pricing,
    refund_policy,
    refunds,
)
from retreat.payments import checkout as payments
from retreat.payments.autopay_models import MandateStatus
from retreat.payments.models import DiscountRedemption, Payment, PaymentKind, PaymentStatus, Refund
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.forms import DataRequired, Length, refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, require_object


class StartForm(FlaskForm):
    kind = HiddenField(validators=[DataRequired()])
    amount = HiddenField(validators=[DataRequired()])  # minor units the page showed


class PlanForm(FlaskForm):
    count = SelectField("Number of payments", coerce=int,
                        choices=[(1, "Pay in full by the due date")] + [(n, f"{n} installments") for n in range(2, 7)])
    autopay = BooleanField("Charge my card automatically on each due date")


class DiscountForm(FlaskForm):
    code = StringField("Discount code", validators=[DataRequired(message="Enter a discount code."), Length(max=40)])
    evidence = StringField("Professional licence number (healthcare professional discount only)",
                           validators=[Optional(), Length(max=300)])


class CardForm(FlaskForm):
    payment_method = StringField(validators=[DataRequired(), Length(max=80)])


def _own_enrollment(enr_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None and enr.participant_id == acting_user().id)
    return enr


def _own_payment(enr: Enrollment, payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    require_object(payment is not None and payment.enrollment_id == enr.id)
    return payment


def _page(enr: Enrollment, *, plan_form=None, discount_form=None, status=200):
    q = pricing.quote(enr)
    due = {k: payments.amount_due(enr, k, q) for k in PaymentKind}
    redemption = db.session.scalar(select(DiscountRedemption).where(DiscountRedemption.enrollment_id == enr.id))
    installments = payments.installment_progress(enr, q)
    mandate = autopay.latest_mandate(enr.id)
    if plan_form is None:
        plan_form = PlanForm(count=len(installments) or 1,
                             autopay=mandate is not None and mandate.status == MandateStatus.ACTIVE)
    return render_template(
        "participant/payments.html", enr=enr, cohort=enr.cohort, q=q, due=due, kinds=PaymentKind,
        history=payments.history(enr), entries=ledger.entries(enr.id), documents=documents.of_enrollment(enr.id),
        refunds=db.session.scalars(select(Refund).where(Refund.enrollment_id == enr.id).order_by(Refund.id)).all(),
        installments=installments, redemption=redemption,
        status_label=enrollment_svc.label(enr.status), active=enr.is_active,
        start_form=StartForm(), plan_form=plan_form, discount_form=discount_form or DiscountForm(),
        refund_schedule=refund_policy.schedule(enr.cohort), mandate=mandate,
        autopay_attempts=autopay_charges.attempts_by_installment([r["installment"].id for r in installments])), status


@bp.get("/payments")
@no_store
def payments_index():
    enrollments = db.session.scalars(select(Enrollment).where(Enrollment.participant_id == acting_user().id)
                                     .order_by(Enrollment.id.desc())).all()
    if len(enrollments) == 1:
        return redirect(url_for("participant.payments_overview", enr_id=enrollments[0].id))
    return render_template("participant/payments_index.html", enrollments=enrollments,
                           quotes={e.id: pricing.quote(e) for e in enrollments})


@bp.get("/payments/<int:enr_id>")
@no_store
def payments_overview(enr_id: int):
    return _page(_own_enrollment(enr_id))


@bp.post("/payments/<int:enr_id>/start")
def payments_start(enr_id: int):
    enr = _own_enrollment(enr_id)
    form = StartForm()
    if not form.validate_on_submit() or form.kind.data not in {k.value for k in PaymentKind}:
        flash("Something was missing from the payment form; nothing was charged. Please try again.", "error")
        return redirect(url_for("participant.payments_overview", enr_id=enr.id))
    try:
        start = payments.begin(enr, form.kind.data, now=now_utc(), actor=acting_user(),
                               expected_amount=form.amount.data)
    except DomainError as exc:
        refused(exc.message, "error")
        return redirect(url_for("participant.payments_overview", enr_id=enr.id))
    if start.payment is None:
        flash(start.message, "info")
        return redirect(url_for("participant.payments_overview", enr_id=enr.id))
    return redirect(url_for("participant.payments_checkout", enr_id=enr.id, payment_id=start.payment.id))


@bp.get("/payments/<int:enr_id>/checkout/<int:payment_id>")
@no_store
def payments_checkout(enr_id: int, payment_id: int):
    enr = _own_enrollment(enr_id)
    payment = _own_payment(enr, payment_id)
    if payment.status != PaymentStatus.PENDING:
        return redirect(url_for("participant.payments_return", enr_id=enr.id, payment_id=payment.id))
    try:
        pi = payments.ensure_intent(payment.id)
    except DomainError as exc:
        refused(f"The payment could not be prepared: {exc.message} Nothing was charged.", "error")
        return redirect(url_for("participant.payments_overview", enr_id=enr_id))
    payment = db.session.get(Payment, payment_id)
    enr = payment.enrollment
    if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        return redirect(url_for("participant.payments_return", enr_id=enr.id, payment_id=payment.id))
    return render_template(
        "participant/checkout.html", enr=enr, cohort=enr.cohort, payment=payment, client_secret=pi["client_secret"],
        stripe_js=gateway.js_url(), publishable_key=gateway.publishable_key(),
        server_confirm=gateway.is_localstripe(), card_form=CardForm(), needs_action=pi["status"] == "requires_action",
        return_url=url_for("participant.payments_return", enr_id=enr.id, payment_id=payment.id, _external=False))


@bp.post("/payments/<int:enr_id>/checkout/<int:payment_id>/card")
def payments_card(enr_id: int, payment_id: int):
    """localstripe only: confirm with the card the browser tokenised (its Stripe.js cannot)."""
    enr = _own_enrollment(enr_id)
    payment = _own_payment(enr, payment_id)
    if not gateway.is_localstripe():
        abort(404)
    form = CardForm(data=request.get_json(silent=True) or {}, meta={"csrf": False})
    pm = form.payment_method.data or ""
    if not form.validate() or not pm.startswith(("card_", "pm_")):
        return jsonify(error="Card details are missing.", errors={"payment_method": ["required"]}), 422
    if payment.status != PaymentStatus.PENDING or not payment.stripe_payment_intent_id:
        return jsonify(error="This payment is no longer open."), 409
    pi_id = payment.stripe_payment_intent_id
    transaction.commit_now("no transaction open while Stripe is called")
    try:
        pi = gateway.confirm_with_payment_method(pi_id, pm)
    except gateway.GatewayError as exc:
        return jsonify(error=exc.message), 502
    return jsonify(status=pi["status"], client_secret=pi["client_secret"], error=pi["failure_message"] or None)


@bp.get("/payments/<int:enr_id>/return/<int:payment_id>")
@no_store
def payments_return(enr_id: int, payment_id: int):
    """After Stripe.js: ask Stripe (not the browser) what happened, and apply it."""
    enr = _own_enrollment(enr_id)
    payment = _own_payment(enr, payment_id)
    message = ""
    if payment.stripe_payment_intent_id:
        try:
            pi_id = payment.stripe_payment_intent_id
            transaction.commit_now("no transaction open while Stripe is called")
            pi = payments.fetch_payment_intent(pi_id, best_effort_fee=True)
            result = payments.sync_payment_intent(pi, now=now_utc())
            transaction.commit_now("the payment's new state is kept before refunds go to Stripe")
            message = result.message
            if result.refunds_to_submit:
                refunds.submit(result.refunds_to_submit, now=now_utc())
        except DomainError as exc:
            transaction.discard("the payment provider could not be reached")
            message = f"We could not reach the payment provider ({exc.message}); refresh in a moment."
    payment = db.session.get(Payment, payment_id)
    return render_template("participant/payment_return.html", enr=payment.enrollment, cohort=payment.enrollment.cohort,
                           payment=payment, q=pricing.quote(payment.enrollment), message=message,
                           status_label=enrollment_svc.label(payment.enrollment.status))


@bp.post("/payments/<int:enr_id>/cancel/<int:payment_id>")
def payments_cancel(enr_id: int, payment_id: int):
    enr = _own_enrollment(enr_id)
    payment = _own_payment(enr, payment_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    pi_id = payment.stripe_payment_intent_id
    abandoned = payments.abandon(payment, now=now_utc(), actor=acting_user())
    transaction.commit_now("the seat hold is released before Stripe is called")
    if abandoned:
        if pi_id:
            try:  # so that the abandoned intent can no longer be paid
                gateway.cancel_payment_intent(pi_id)
            except gateway.GatewayError:
                pass  # already paid or final: its webhook will tell us
        flash("The payment was cancelled and your seat hold released. Nothing was charged.", "info")
    return redirect(url_for("participant.payments_overview", enr_id=enr.id))


@bp.post("/payments/<int:enr_id>/plan")
def payments_plan(enr_id: int):
    enr = _own_enrollment(enr_id)
    form = PlanForm()
    if not form.validate_on_submit():
        return _page(enr, plan_form=form, status=422)
    try:
        # A consent names the dates and amounts: a new plan ends the old one (a new card step follows).
        autopay.revoke(enr, now=now_utc(), actor=acting_user(), reason="a new payment plan was chosen",
                       tell=not form.autopay.data, requeue=False, include_pending=False)
        payments.choose_plan(enr, form.count.data, now=now_utc(), actor=acting_user())
        mandate = autopay.start(enr, now=now_utc(), actor=acting_user()) if form.autopay.data else None
    except DomainError as exc:
        transaction.discard("the plan was refused")
        form.count.errors = [exc.message]
        return _page(_own_enrollment(enr_id), plan_form=form, status=exc.status)
    if mandate is not None:
        return redirect(url_for("participant.autopay_card", enr_id=enr.id, mandate_id=mandate.id))
    flash("Your payment plan is set. We will remind you 7 days and 1 day before each due date.", "success")
    return redirect(url_for("participant.payments_overview", enr_id=enr.id))


@bp.post("/payments/<int:enr_id>/discount")
def payments_discount(enr_id: int):
    enr = _own_enrollment(enr_id)
    form = DiscountForm()
    if not form.validate_on_submit():
        return _page(enr, discount_form=form, status=422)
    try:
        red = pricing.redeem_code(enr, form.code.data, now=now_utc(), actor=acting_user(),
                                  evidence=form.evidence.data or "")
    except DomainError as exc:
        target = form.evidence if exc.field == "evidence" else form.code
        target.errors = [exc.message]
        return _page(_own_enrollment(enr_id), discount_form=form, status=exc.status)
    flash("Discount requested: staff will review it shortly." if red.status == "pending_approval"
          else "Discount applied.", "success")
    return redirect(url_for("participant.payments_overview", enr_id=enr.id))
