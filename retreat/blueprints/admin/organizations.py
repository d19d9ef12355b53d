"""Admin: partner provider organisations."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import form_failed
from retreat.blueprints.admin.forms import ActionForm, OrganizationForm
from retreat.extensions import db
from retreat.models import ProviderOrganization
from retreat.security import acting_user, request_context
from retreat.services import admin_users
from retreat.services.errors import DomainError


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
    if form.validate_on_submit():
        try:
            org = admin_users.create_organization(name=form.name.data, contact_email=form.contact_email.data,
                                                  phone=form.phone.data, actor=acting_user(),
                                                  ctx=request_context())
            db.session.commit()
        except DomainError as exc:
            form_failed(form, exc)
        else:
            flash(f"{org.name} was added.", "success")
            return redirect(url_for("admin.organization_detail", org_id=org.id))
    return render_template("admin/organization_new.html", form=form), (422 if form.errors else 200)


@bp.route("/organizations/<int:org_id>", methods=["GET", "POST"])
def organization_detail(org_id: int):
    org = _load(org_id)
    form = OrganizationForm(obj=org)
    if form.validate_on_submit():
        try:
            admin_users.update_organization(org, name=form.name.data, contact_email=form.contact_email.data,
                                            phone=form.phone.data, actor=acting_user(), ctx=request_context())
            db.session.commit()
        except DomainError as exc:
            form_failed(form, exc)
        else:
            flash("Saved.", "success")
            return redirect(url_for("admin.organization_detail", org_id=org.id))
    return render_template("admin/organization_detail.html", org=org, form=form,
                           action_form=ActionForm(formdata=None)), (422 if form.errors else 200)


@bp.post("/organizations/<int:org_id>/active")
def organization_active(org_id: int):
    org = _load(org_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    admin_users.set_organization_active(org, form.value.data == "1", actor=acting_user(), ctx=request_context())
    db.session.commit()
    flash(f"{org.name} is now {'active' if org.is_active else 'deactivated'}.", "success")
    return redirect(url_for("admin.organization_detail", org_id=org.id))
