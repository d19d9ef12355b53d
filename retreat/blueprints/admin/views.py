from flask import flash, redirect, render_template, url_for

from retreat.accounts import crisis
from retreat.accounts import users as accounts
from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import submit
from retreat.blueprints.admin.forms import CrisisResourcesForm, SettingsForm
from retreat.web.security import acting_user, request_context


@bp.get("/")
def dashboard():
    return render_template("admin/dashboard.html")


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    form = SettingsForm()
    ok, _ = submit(form, lambda: accounts.set_setting(
        accounts.REQUIRE_STAFF_TOTP, "1" if form.require_staff_totp.data else "0",
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash("Settings saved.", "success")
        return redirect(url_for("admin.settings"))
    if not form.is_submitted():
        form.require_staff_totp.data = accounts.staff_totp_required()
    return render_template("admin/settings.html", form=form), (422 if form.errors else 200)


@bp.route("/settings/crisis-resources", methods=["GET", "POST"])
def crisis_resources():
    """The crisis numbers participants see on their pages and in their emails."""
    form = CrisisResourcesForm()
    ok, _ = submit(form, lambda: crisis.save(
        crisis.validate(form.country.data, [row.data for row in form.resources]),
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash("Crisis resources saved: participants see them on their pages and in their emails.", "success")
        return redirect(url_for("admin.crisis_resources"))
    if not form.is_submitted():
        current = crisis.current()
        form.country.data = current.country
        for row, resource in zip(form.resources, current.resources, strict=False):
            row.form.name.data, row.form.number.data = resource.name, resource.number
            row.form.description.data = resource.description
    return render_template("admin/crisis_resources.html", form=form, current=crisis.current(),
                           default=crisis.DEFAULT), (422 if form.errors else 200)


from retreat.blueprints.admin import audit, organizations, users  # noqa: E402,F401
