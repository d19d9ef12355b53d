"""The guest's text-message reminders on the booking's manage page: number, code, remove (the same
rules as an account's number, ``consults.guest_phone``)."""

from __future__ import annotations

from flask import flash, redirect, url_for

from retreat.accounts import phone
from retreat.blueprints.consults import bp
from retreat.blueprints.consults.forms import ConfirmForm, PhoneCodeForm, PhoneNumberForm
from retreat.blueprints.consults.views import _book_limit, _manage_view, manage_link
from retreat.consults import guest_phone
from retreat.core.errors import DomainError
from retreat.extensions import limiter
from retreat.web import rate_keys, transaction
from retreat.web.forms import refused, show_domain_error
from retreat.web.security import request_context


def _sms_refused(consult, now, form):
    """Without the text-reminder card on the page (an account's booking, a call cancelled or over), a
    refusal is told as a flash message on the manage page; None when the card is there to show it."""
    if guest_phone.offered(consult, now):
        return None
    messages = [m for errors in form.errors.values() for m in errors] + list(form.form_errors)
    refused(messages[0] if messages else "Text reminders are not available for this booking.")
    return redirect(url_for("consults.manage", consult_id=consult.id)), 303


def _sms_done(consult, message: str):
    flash(message, "success")
    return redirect(url_for("consults.manage", consult_id=consult.id) + "#text-reminders"), 303


@bp.post("/booking/<int:consult_id>/sms/number")
@limiter.limit(_book_limit, key_func=rate_keys.client("consult-sms"))
@manage_link
def sms_number(token, consult, now):
    """Text a code to the number the guest typed (the same rules as an account's number)."""
    form = PhoneNumberForm(prefix="number")
    if form.validate_on_submit():
        try:
            guest_phone.request_code(consult, form.phone.data, now=now, ctx=request_context())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            return _sms_done(consult, "We texted you a 6-digit code. Enter it below to turn text reminders on.")
    return _sms_refused(consult, now, form) or _manage_view(consult, now, 422, number_form=form)


@bp.post("/booking/<int:consult_id>/sms/verify")
@manage_link
def sms_verify(token, consult, now):
    form = PhoneCodeForm(prefix="code")
    if form.validate_on_submit():
        try:
            guest_phone.verify(consult, form.code.data, now=now, ctx=request_context())
        except phone.WrongCode as exc:
            show_domain_error(form, exc)
            transaction.keep("a wrong code counts towards the limit of tries")
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            return _sms_done(consult, "Your number is verified. We will text you before your call.")
    return _sms_refused(consult, now, form) or _manage_view(consult, now, 422, code_form=form)


@bp.post("/booking/<int:consult_id>/sms/remove")
@manage_link
def sms_remove(token, consult, now):
    form = ConfirmForm(prefix="remove")
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "warning")
        return redirect(url_for("consults.manage", consult_id=consult.id)), 303
    removed = guest_phone.remove(consult, now=now, ctx=request_context())
    return _sms_done(consult, "Your number is removed. We will not text you." if removed
                     else "There was no number to remove.")
