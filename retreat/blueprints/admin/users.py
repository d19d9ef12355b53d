"""Admin: users, roles, sessions, two-factor and provider licences."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from retreat.accounts import admin as admin_users
from retreat.accounts import users as accounts
from retreat.accounts.models import ProviderOrganization, User
from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import button, page_arg, query_without_page, submit
from retreat.blueprints.admin.forms import ActionForm, LicenseForm, RoleForm, StaffUserForm, UserSearchForm
from retreat.core.errors import ValidationFailed
from retreat.core.pagination import paginate
from retreat.database import parse_id
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context

PER_PAGE = 25


def _load_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _selected_org(form) -> ProviderOrganization | None:
    raw = form.provider_organization.data
    if not raw:
        return None
    org_id = parse_id(raw)
    org = db.session.get(ProviderOrganization, org_id) if org_id else None
    if org is None:
        raise ValidationFailed("Choose an organisation from the list.", field="provider_organization")
    return org


@bp.get("/users")
def users():
    form = UserSearchForm(formdata=request.args)
    page = None
    if form.validate():
        active = {"active": True, "inactive": False}.get(form.status.data or "")
        stmt = admin_users.search_users(q=form.q.data, role=form.role.data or None, active=active)
        page = paginate(stmt, page=page_arg(), per_page=PER_PAGE)
    return render_template("admin/users.html", form=form, page=page, query=query_without_page()), (
        200 if page is not None else 422)


@bp.route("/users/new", methods=["GET", "POST"])
@no_store
def user_new():
    form = StaffUserForm(orgs=admin_users.active_organizations())
    ok, created = submit(form, lambda: admin_users.create_staff_user(
        email=form.email.data, name=form.name.data, role=form.role.data, tz=form.tz.data,
        provider_organization=_selected_org(form), actor=acting_user(), ctx=request_context()))
    if ok:
        user, password = created
        # Shown on this page only, never stored in clear; reloading does not show it again.
        return render_template("admin/user_created.html", user=user, password=password), 201
    return render_template("admin/user_new.html", form=form), (422 if form.errors else 200)


def _render_detail(user: User, *, role_form=None, license_form=None, status: int = 200):
    orgs = admin_users.active_organizations()
    if role_form is None:
        role_form = RoleForm(formdata=None, orgs=orgs, role=user.role,
                             provider_organization=str(user.provider_organization_id or ""))
    license_form = license_form or LicenseForm(formdata=None)
    return render_template("admin/user_detail.html", user=user, role_form=role_form, license_form=license_form,
                           action_form=ActionForm(formdata=None), today=now_utc().date()), status


@bp.get("/users/<int:user_id>")
@no_store
def user_detail(user_id: int):
    return _render_detail(_load_user(user_id))


@bp.post("/users/<int:user_id>/role")
def user_role(user_id: int):
    user = _load_user(user_id)
    form = RoleForm(orgs=admin_users.active_organizations())
    ok, _ = submit(form, lambda: accounts.change_role(user, form.role.data, actor=acting_user(),
                                                      ctx=request_context(),
                                                      provider_organization=_selected_org(form)))
    if ok:
        flash(f"{user.name} is now {user.role}. Their sessions were ended.", "success")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, role_form=form, status=422)


def _user_button(user_id: int, action, done: str):
    user = _load_user(user_id)
    return button(lambda value: action(user, value, actor=acting_user(), ctx=request_context()),
                  done=done.format(name=user.name), back=url_for("admin.user_detail", user_id=user.id))


@bp.post("/users/<int:user_id>/active")
def user_active(user_id: int):
    return _user_button(user_id, lambda user, value, **kw: accounts.set_active(user, value == "1", **kw),
                        "Saved: {name}'s account status.")


@bp.post("/users/<int:user_id>/sign-out")
def user_sign_out(user_id: int):
    return _user_button(user_id, lambda user, _v, **kw: admin_users.sign_out_everywhere(user, **kw),
                        "{name} was signed out everywhere.")


@bp.post("/users/<int:user_id>/reset-totp")
def user_reset_totp(user_id: int):
    return _user_button(user_id, lambda user, _v, **kw: admin_users.reset_totp(user, **kw),
                        "Two-factor was reset for {name}; they set it up again at their next sign-in.")


@bp.post("/users/<int:user_id>/licenses")
def user_license_add(user_id: int):
    user = _load_user(user_id)
    form = LicenseForm()
    ok, _ = submit(form, lambda: admin_users.add_license(
        user, number=form.number.data, state=form.state.data, kind=form.kind.data,
        expires_on=form.expires_on.data, actor=acting_user(), ctx=request_context()))
    if ok:
        if form.expires_on.data < now_utc().date():
            flash(f"Licence added, but it expired on {form.expires_on.data:%d %b %Y}: it does not count for "
                  "clearances or dosing sessions until a current licence is added.", "warning")
        else:
            flash("Licence added.", "success")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, license_form=form, status=422)
