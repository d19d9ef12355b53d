"""Admin: partner provider organisations."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from retreat.accounts import admin as admin_users
from retreat.accounts.models import ProviderOrganization
from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import button, submit
from retreat.blueprints.admin.forms import ActionForm, OrganizationForm
from retreat.extensions import db
from retreat.web.security import acting_user, request_context


def _load(org_id: int) -> ProviderOrganization:
    org = db.session.get(ProviderOrganization, org_id)
    if org is None:
        abort(404)
    return org


@bp.get("/organizations")
def organizations():
    orgs = list(db.session.scalars(admin_users.list_organizations()))
    return render_template("admin/organizations.html", orgs=orgs)


@bp.route("/organizations/new", methods=["GET", "POST"])
def organization_new():
    form = OrganizationForm()
    ok, org = submit(form, lambda: admin_users.create_organization(
        name=form.name.data, contact_email=form.contact_email.data, phone=form.phone.data,
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash(f"{org.name} was added.", "success")
        return redirect(url_for("admin.organization_detail", org_id=org.id))
    return render_template("admin/organization_new.html", form=form), (422 if form.errors else 200)


@bp.route("/organizations/<int:org_id>", methods=["GET", "POST"])
def organization_detail(org_id: int):
    org = _load(org_id)
    form = OrganizationForm(obj=org)
    ok, _ = submit(form, lambda: admin_users.update_organization(
        org, name=form.name.data, contact_email=form.contact_email.data, phone=form.phone.data,
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash("Saved.", "success")
        return redirect(url_for("admin.organization_detail", org_id=org.id))
    return render_template("admin/organization_detail.html", org=org, form=form,
                           action_form=ActionForm(formdata=None)), (422 if form.errors else 200)


@bp.post("/organizations/<int:org_id>/active")
def organization_active(org_id: int):
    org = _load(org_id)
    return button(lambda value: admin_users.set_organization_active(org, value == "1", actor=acting_user(),
                                                                    ctx=request_context()),
                  done="Saved: the organisation's status.",
                  back=url_for("admin.organization_detail", org_id=org.id))
