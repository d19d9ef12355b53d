"""Participant pages for automatic installments: save a card (Stripe.js card element + SetupIntent)
under consent text naming the card, each amount and each date; the return page that asks Stripe
what happened; switch to paying by hand; replace the card."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm

from retreat.blueprints.participant import bp
from retreat.blueprints.participant.payments import _own_enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.payments import autopay, gateway
from retreat.payments.autopay_models import AutopayMandate, MandateStatus
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.forms import refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, require_object


def _own_mandate(enr_id: int, mandate_id: int):
    enr = _own_enrollment(enr_id)
    mandate = db.session.get(AutopayMandate, mandate_id)
    require_object(mandate is not None and mandate.enrollment_id == enr.id)
    return enr, mandate


def _overview(enr_id: int):
    return redirect(url_for("participant.payments_overview", enr_id=enr_id))


@bp.get("/payments/<int:enr_id>/autopay/<int:mandate_id>")
@no_store
def autopay_card(enr_id: int, mandate_id: int):
    enr, mandate = _own_mandate(enr_id, mandate_id)
    if mandate.status != MandateStatus.PENDING:
        return _overview(enr.id)
    try:
        si = autopay.ensure_setup_intent(mandate.id)
    except DomainError as exc:
        refused(f"The card form could not be prepared: {exc.message} Nothing was saved or charged.", "error")
        return _overview(enr_id)
    enr, mandate = _own_mandate(enr_id, mandate_id)
    return render_template("participant/autopay_card.html", enr=enr, cohort=enr.cohort, mandate=mandate,
                           schedule=autopay.schedule(enr), consent=autopay.consent_text(enr),
                           client_secret=si["client_secret"], stripe_js=gateway.js_url(),
                           publishable_key=gateway.publishable_key(),
                           return_url=url_for("participant.autopay_return", enr_id=enr.id, mandate_id=mandate.id))


@bp.get("/payments/<int:enr_id>/autopay/<int:mandate_id>/return")
@no_store
def autopay_return(enr_id: int, mandate_id: int):
    """After Stripe.js: ask Stripe (not the browser) whether the card was saved."""
    enr, mandate = _own_mandate(enr_id, mandate_id)
    if mandate.status == MandateStatus.PENDING:
        try:
            mandate = autopay.complete(mandate.id, now=now_utc(), actor=acting_user())
        except DomainError as exc:
            refused(exc.message, "error")
            return redirect(url_for("participant.autopay_card", enr_id=enr_id, mandate_id=mandate_id))
    if mandate.status == MandateStatus.ACTIVE:
        flash(f"Your card ({mandate.card_label}) is saved: each installment will be charged automatically on its "
              "due date. We sent you a confirmation.", "success")
    return _overview(enr_id)


@bp.post("/payments/<int:enr_id>/autopay/stop")
def autopay_stop(enr_id: int):
    enr = _own_enrollment(enr_id)
    if not FlaskForm().validate_on_submit():
        refused("The form expired; nothing was changed. Please try again.", "error")
        return _overview(enr_id)
    if autopay.revoke(enr, now=now_utc(), actor=acting_user()):
        flash("Automatic payments are stopped: your card will not be charged. Please pay each installment by "
              "its due date; we sent you a confirmation.", "success")
    else:
        flash("Automatic payments were already stopped.", "info")
    return _overview(enr_id)


@bp.post("/payments/<int:enr_id>/autopay/card")
def autopay_replace(enr_id: int):
    """Add a card, or replace the saved one (the old mandate ends once the new card is saved)."""
    enr = _own_enrollment(enr_id)
    if not FlaskForm().validate_on_submit():
        refused("The form expired; nothing was changed. Please try again.", "error")
        return _overview(enr_id)
    try:
        mandate = autopay.start(enr, now=now_utc(), actor=acting_user())
    except DomainError as exc:
        refused(exc.message, "error")
        return _overview(enr_id)
    transaction.commit_now("the pending mandate is kept before the card page calls Stripe")
    return redirect(url_for("participant.autopay_card", enr_id=enr.id, mandate_id=mandate.id))
