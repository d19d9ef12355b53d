"""Discount codes, managed by finance (and admins): list with usage, create, edit, deactivate."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField
from wtforms.validators import Optional

from retreat.accounts.models import Role
from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import viewer_tz
from retreat.cohorts.models import Cohort
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.payments import discounts
from retreat.payments.models import DiscountCode
from retreat.timeutil import now_utc
from retreat.web.forms import DataRequired, DateField, IntegerField, Length, show_domain_error, strip
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, public_view, request_context, require_object, roles_required

MANAGERS = (Role.FINANCE, Role.ADMIN)


class DiscountCodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)], filters=[strip])
    description = StringField("Description", validators=[Length(max=200)], filters=[strip])
    kind = SelectField("Discount", choices=[("percent", "A percentage of the price"),
                                            ("fixed", "A fixed amount off")], default="percent")
    percent = IntegerField("Percentage", validators=[Optional()])
    amount = StringField("Fixed amount", validators=[Length(max=20)], filters=[strip])
    currency = StringField("Currency of the fixed amount", validators=[Length(max=3)], filters=[strip])
    valid_from = DateField("Valid from", validators=[Optional()])
    valid_until = DateField("Valid until (inclusive)", validators=[Optional()])
    max_uses = IntegerField("Total limit", validators=[Optional()])
    per_person_limit = IntegerField("Per-person limit", validators=[Optional()])
    cohorts = SelectMultipleField("Cohorts it applies to", coerce=int, validate_choice=True)
    healthcare = BooleanField("Healthcare professional: finance approves the evidence each person gives")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rows = db.session.scalars(select(Cohort).order_by(Cohort.starts_at.desc(), Cohort.id.desc())).all()
        self.cohorts.choices = [(c.id, f"{c.title} ({c.currency.upper()}, {c.starts_at:%Y-%m-%d})") for c in rows]

    def pre_validate_messages(self):
        if self.cohorts.errors:
            self.cohorts.errors = ["Choose cohorts from the list."]

    def to_input(self) -> discounts.CodeInput:
        return discounts.CodeInput(
            code=self.code.data or "", kind=self.kind.data or "", description=self.description.data or "",
            percent=self.percent.data, amount=self.amount.data or "", currency=self.currency.data or "",
            valid_from=self.valid_from.data, valid_until=self.valid_until.data, max_uses=self.max_uses.data,
            per_person_limit=self.per_person_limit.data, cohort_ids=list(self.cohorts.data or []),
            healthcare=bool(self.healthcare.data), tz=viewer_tz())


def _guarded(view):
    """Finance and admins (the finance blueprint alone admits finance only)."""
    return public_view(roles_required(*MANAGERS)(view))


@bp.get("/discount-codes")
@no_store
@_guarded
def discount_codes():
    return render_template("finance/discount_codes.html", rows=discounts.listing(), value_text=discounts.value_text,
                           tz=viewer_tz(), bounds=discounts.local_bounds, form=FlaskForm())


def _form_page(form: DiscountCodeForm, code: DiscountCode | None, status: int = 200):
    return render_template("finance/discount_code_form.html", form=form, code=code,
                           uses=discounts.uses(code.id) if code is not None else 0), status


def _save(code: DiscountCode | None):
    form = DiscountCodeForm()
    if not form.validate_on_submit():
        form.pre_validate_messages()
        return _form_page(form, code, 422)
    try:
        saved = discounts.save_code(code, form.to_input(), now=now_utc(), actor=acting_user(), ctx=request_context())
    except DomainError as exc:
        show_domain_error(form, exc)
        return _form_page(form, code, exc.status)
    flash(f"Discount code {saved.code} saved.", "success")
    return redirect(url_for("finance.discount_codes"))


@bp.route("/discount-codes/new", methods=["GET", "POST"])
@no_store
@_guarded
def discount_code_new():
    if not FlaskForm().is_submitted():
        return _form_page(DiscountCodeForm(), None)
    return _save(None)


@bp.route("/discount-codes/<int:code_id>", methods=["GET", "POST"])
@no_store
@_guarded
def discount_code_edit(code_id: int):
    code = db.session.get(DiscountCode, code_id)
    require_object(code is not None)
    if FlaskForm().is_submitted():
        return _save(code)
    start, end = discounts.local_bounds(code, viewer_tz())
    form = DiscountCodeForm(data={
        "code": code.code, "description": code.description, "kind": code.kind, "percent": code.percent,
        "amount": discounts.amount_text(code), "currency": code.currency or "", "valid_from": start,
        "valid_until": end, "max_uses": code.max_uses, "per_person_limit": code.per_person_limit,
        "cohorts": [c.id for c in code.cohorts] or ([code.cohort_id] if code.cohort_id else []),
        "healthcare": code.requires_approval})
    return _form_page(form, code)


@bp.post("/discount-codes/<int:code_id>/<action>")
@_guarded
def discount_code_active(code_id: int, action: str):
    code = db.session.get(DiscountCode, code_id)
    require_object(code is not None and action in ("deactivate", "reactivate"))
    if not FlaskForm().validate_on_submit():
        abort(400)
    discounts.deactivate(code, now=now_utc(), actor=acting_user(), ctx=request_context(),
                         active=action == "reactivate")
    flash(f"Discount code {code.code} " + ("reactivated." if action == "reactivate" else
                                            "deactivated: it can no longer be redeemed."), "success")
    return redirect(url_for("finance.discount_codes"))
