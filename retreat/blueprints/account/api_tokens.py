"""``/account/api-tokens``: staff list, create and revoke their own personal API tokens.

A new token's secret is shown once, on the answer to the create form (never cached); after that
only its prefix is known. Scopes offered are those the user's role may hold; none checked is
refused (a token for everything the role allows is made by the CLI without ``--scope``).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from retreat.accounts import api_tokens
from retreat.accounts.models import STAFF_ROLES, ApiToken
from retreat.blueprints.account import bp
from retreat.blueprints.account.forms import ConfirmForm
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.forms import DataRequired, Length, show_domain_error, strip
from retreat.web.hooks import no_store
from retreat.web.security import request_context, require_object, roles_required

EXPIRY_CHOICES = [SelectChoice(str(d), f"{d} days") for d in api_tokens.EXPIRY_DAYS] + [SelectChoice("none", "No expiry")]


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiTokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(message="Name the token (what uses it)."),
                                                 Length(max=api_tokens.NAME_MAX)], filters=[strip],
                       description="For you: what uses it (\u201cZapier\u201d, \u201cnightly export\u201d).")
    scopes = _Checkboxes("Scopes", choices=[])
    expires = SelectField("Expires after", choices=EXPIRY_CHOICES, default="90")

    def __init__(self, role: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scopes.choices = [SelectChoice(s.name, f"{s.name}: {s.description}") for s in api_tokens.scopes_for_role(role)]

    def validate_scopes(self, field):
        if not field.data:
            raise ValidationError("Choose at least one scope.")


def _user():
    return current_user._get_current_object()


def _page(form: ApiTokenForm, status: int = 200):
    user = _user()
    now = now_utc()
    rows = [(t, api_tokens.token_status(t, now)) for t in api_tokens.tokens_of(user)]
    return render_template("account/api_tokens.html", form=form, rows=rows, revoke_form=ConfirmForm(prefix="revoke"),
                           scopes=api_tokens.scopes_for_role(user.role)), status


@bp.get("/api-tokens")
@roles_required(*STAFF_ROLES)
def api_tokens_page():
    return _page(ApiTokenForm(_user().role, prefix="token"))


@bp.post("/api-tokens")
@roles_required(*STAFF_ROLES)
@no_store  # the answer shows the new secret, once
def api_token_create():
    user = _user()
    form = ApiTokenForm(user.role, prefix="token")
    if not form.validate_on_submit():
        return _page(form, 422)
    now = now_utc()
    try:
        days = None if form.expires.data == "none" else int(form.expires.data)
        token, raw = api_tokens.create_token(user, name=form.name.data, scopes=list(form.scopes.data),
                                             expires_at=api_tokens.expiry_from_days(days, now), now=now,
                                             ctx=request_context())
    except DomainError as err:
        show_domain_error(form, err, {"scopes": "scopes", "expires": "expires"})
        return _page(form, 422)
    return render_template("account/api_token_created.html", token=token, raw=raw)


@bp.post("/api-tokens/<int:token_id>/revoke")
@roles_required(*STAFF_ROLES)
def api_token_revoke(token_id: int):
    user = _user()
    token = db.session.get(ApiToken, token_id)
    require_object(token is not None and token.user_id == user.id)
    form = ConfirmForm(prefix="revoke")
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("account.api_tokens_page")), 303
    if token.revoked_at is not None:
        flash(f"The token \u201c{token.name}\u201d was already revoked.", "info")
    else:
        api_tokens.revoke_token(token, actor=user, ctx=request_context())
        flash(f"The token \u201c{token.name}\u201d is revoked: calls with it now get 401.", "success")
    return redirect(url_for("account.api_tokens_page")), 303
