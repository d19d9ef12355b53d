"""``/account/sms``: add a mobile number, verify it with the texted code, turn SMS reminders off
or on, remove the number (rules in ``retreat.accounts.phone``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from retreat.accounts import phone
from retreat.blueprints.account import bp
from retreat.blueprints.account.forms import ConfirmForm, PhoneCodeForm, PhoneNumberForm
from retreat.core.errors import DomainError
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.forms import show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import request_context, roles_required

SMS_ROLES = ("participant",)


def _user():
    return current_user._get_current_object()


def _page(status: int = 200, **forms):
    user = _user()
    row = phone.for_user(user)
    forms.setdefault("number_form", PhoneNumberForm(prefix="number"))
    forms.setdefault("code_form", PhoneCodeForm(prefix="code"))
    for name in ("off", "on", "remove"):
        forms.setdefault(f"{name}_form", ConfirmForm(prefix=name))
    return render_template("account/sms.html", row=row, number=phone.display(row.number) if row else "",
                           pending=phone.display(row.pending) if row and row.code_hash else "", **forms), status


@bp.get("/sms")
@roles_required(*SMS_ROLES)
@no_store
def sms():
    return _page()


@bp.post("/sms/number")
@roles_required(*SMS_ROLES)
@no_store
def sms_number():
    form = PhoneNumberForm(prefix="number")
    if form.validate_on_submit():
        try:
            phone.request_code(_user(), form.phone.data, now=now_utc(), ctx=request_context())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash("We texted you a 6-digit code. Enter it below to turn SMS reminders on.", "success")
            return redirect(url_for("account.sms")), 303
    return _page(422, number_form=form)


@bp.post("/sms/verify")
@roles_required(*SMS_ROLES)
@no_store
def sms_verify():
    form = PhoneCodeForm(prefix="code")
    if form.validate_on_submit():
        try:
            phone.verify(_user(), form.code.data, now=now_utc(), ctx=request_context())
        except phone.WrongCode as exc:
            show_domain_error(form, exc)
            transaction.keep("a wrong code counts towards the limit of tries")
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash("Your number is verified. SMS reminders are on.", "success")
            return redirect(url_for("account.sms")), 303
    return _page(422, code_form=form)


def _toggle(prefix: str, on: bool):
    form = ConfirmForm(prefix=prefix)
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("account.sms")), 303
    try:
        changed = phone.set_sms(_user(), on, now=now_utc(), ctx=request_context())
    except DomainError as exc:
        transaction.discard(exc.message)
        flash(exc.message, "error")
        return redirect(url_for("account.sms")), 303
    flash(("SMS reminders are on." if on else "SMS reminders are off. Email reminders continue.")
          if changed else "Nothing to change.", "success")
    return redirect(url_for("account.sms")), 303


@bp.post("/sms/off")
@roles_required(*SMS_ROLES)
def sms_off():
    return _toggle("off", False)


@bp.post("/sms/on")
@roles_required(*SMS_ROLES)
def sms_on():
    return _toggle("on", True)


@bp.post("/sms/remove")
@roles_required(*SMS_ROLES)
def sms_remove():
    form = ConfirmForm(prefix="remove")
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("account.sms")), 303
    if phone.remove(_user(), now=now_utc(), ctx=request_context()):
        flash("Your number is removed. We will not text you.", "success")
    else:
        flash("There was no number to remove.", "info")
    return redirect(url_for("account.sms")), 303
