"""A scholarship on one enrollment: finance and admins set a reduced price with a reason."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.discount_codes import MANAGERS
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.money import from_minor
from retreat.payments import pricing, refunds
from retreat.timeutil import now_utc
from retreat.web.forms import DataRequired, Length, show_domain_error, strip
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, public_view, request_context, require_object, roles_required


class ScholarshipForm(FlaskForm):
    price = StringField("Scholarship price", validators=[DataRequired(), Length(max=20)], filters=[strip])
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=pricing.SCHOLARSHIP_REASON_MAX)],
                           filters=[strip])


def _page(enr: Enrollment, form: ScholarshipForm, status: int = 200):
    return render_template("finance/scholarship.html", enr=enr, q=pricing.quote(enr), form=form,
                           current=pricing.scholarship_of(enr), refundable=max(0, refunds.refundable(enr))), status


@bp.route("/enrollments/<int:enr_id>/scholarship", methods=["GET", "POST"])
@public_view
@roles_required(*MANAGERS)
@no_store
def scholarship(enr_id: int):
    enr = db.session.get(Enrollment, enr_id)
    require_object(enr is not None)
    form = ScholarshipForm()
    if not form.is_submitted():
        current = pricing.scholarship_of(enr)
        if current is not None:
            form.price.data = str(from_minor(current.price_minor, current.currency))
            form.reason.data = current.reason
        return _page(enr, form)
    if not form.validate():
        return _page(enr, form, 422)
    try:
        row = pricing.set_scholarship(enr, form.price.data, reason=form.reason.data, now=now_utc(),
                                      actor=acting_user(), ctx=request_context())
    except DomainError as exc:
        show_domain_error(form, exc)
        return _page(db.session.get(Enrollment, enr_id), form, exc.status)
    flash(f"Scholarship saved: {enr.participant.name} now pays a price of "
          f"{pricing.quote(enr).fmt(row.price_minor)}.", "success")
    return redirect(url_for("finance.scholarship", enr_id=enr_id))
