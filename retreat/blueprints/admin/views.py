from flask import flash, redirect, render_template, url_for

from retreat.accounts import admin as admin_accounts
from retreat.accounts import crisis, practice
from retreat.accounts import users as accounts
from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import submit
from retreat.blueprints.admin.forms import (
    CrisisResourcesForm,
    LegalDetailsForm,
    SafetySettingsForm,
    SettingsForm,
)
from retreat.core.pagination import first_of
from retreat.integration import escalation
from retreat.messaging import outbox
from retreat.messaging.models import OutboxStatus
from retreat.payments import legal
from retreat.privacy import deletion_review
from retreat.timeutil import now_utc, zone
from retreat.web.forms import status_for
from retreat.web.security import acting_user, request_context

LICENSE_WARNING_DAYS = 60


@bp.get("/")
def dashboard():
    """The admin's home: failed messages, licences expiring within 60 days, open deletion requests."""
    viewer = acting_user()
    today = now_utc().astimezone(zone(viewer.tz)).date()
    return render_template("admin/dashboard.html",
                           failed=first_of(outbox.messages_query(status=OutboxStatus.FAILED.value)),
                           licenses=admin_accounts.licenses_expiring(today, within_days=LICENSE_WARNING_DAYS),
                           deletions=deletion_review.open_requests(), license_days=LICENSE_WARNING_DAYS,
                           due_by=deletion_review.due_by)


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    form = SettingsForm()

    def save():
        zone = practice.validate(form.practice_timezone.data)  # before anything is stored
        accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1" if form.require_staff_totp.data else "0",
                             actor=acting_user(), ctx=request_context())
        practice.save(zone, actor=acting_user(), ctx=request_context())

    ok, _ = submit(form, save)
    if ok:
        flash("Settings saved.", "success")
        return redirect(url_for("admin.settings"))
    if not form.is_submitted():
        form.require_staff_totp.data = accounts.staff_totp_required()
        form.practice_timezone.data = practice.timezone()
    return render_template("admin/settings.html", form=form), (422 if form.errors else 200)


@bp.route("/settings/safety", methods=["GET", "POST"])
def safety_settings():
    """How long an alert may wait before it is escalated, and who at the practice hears of it."""
    form = SafetySettingsForm()
    ok, _ = submit(form, lambda: escalation.save_settings(
        hours=form.escalate_after_hours.data, contact_email=form.practice_contact_email.data or "",
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash("Safety settings saved.", "success")
        return redirect(url_for("admin.safety_settings"))
    if not form.is_submitted():
        form.escalate_after_hours.data = escalation.after_hours()
        form.practice_contact_email.data = escalation.practice_contact()
    return render_template("admin/safety_settings.html", form=form,
                           contact_set=bool(escalation.practice_contact())), status_for(form)


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


@bp.route("/settings/legal", methods=["GET", "POST"])
def legal_settings():
    """The practice's legal name, address, tax id and invoice footer, printed on finance documents."""
    form = LegalDetailsForm()
    ok, _ = submit(form, lambda: legal.save(
        legal.validate(legal_name=form.legal_name.data, address=form.address.data, tax_id=form.tax_id.data,
                       footer=form.footer.data),
        actor=acting_user(), ctx=request_context()))
    if ok:
        flash("Legal details saved: receipts and credit notes issued from now on carry them.", "success")
        return redirect(url_for("admin.legal_settings"))
    current = legal.current()
    if not form.is_submitted():
        form.legal_name.data, form.address.data = current.legal_name, current.address
        form.tax_id.data, form.footer.data = current.tax_id, current.footer
    return render_template("admin/legal_settings.html", form=form, current=current), status_for(form)


from retreat.blueprints.admin import audit, organizations, users  # noqa: E402,F401
