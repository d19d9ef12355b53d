"""Break-glass: an admin reads one participant's clinical record in an emergency, with a written
reason. Highlighted in the audit log; the record is shown once, in the response, never cached."""

from __future__ import annotations

from flask import render_template
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, TextAreaField
from wtforms.validators import Optional

from retreat.blueprints.admin import bp
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance_status, screening
from retreat.clinical.models import Intake
from retreat.cohorts.models import Enrollment
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.clinical import read_or_404
from retreat.web.forms import show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


class BreakGlassForm(FlaskForm):
    enrollment_id = SelectField("Participant and cohort", coerce=int, validators=[Optional()])
    reason = TextAreaField("Why do you need to read this record now?", validators=[Optional()])


def _choices() -> list[tuple[int, str]]:
    rows = db.session.execute(select(Enrollment).join(Intake, Intake.enrollment_id == Enrollment.id)
                              .order_by(Enrollment.id.desc())).scalars()
    return [(e.id, f"{e.participant.name} <{e.participant.email}> — {e.cohort.title}") for e in rows]


@bp.route("/break-glass", methods=["GET", "POST"])
@no_store
def break_glass():
    form = BreakGlassForm()
    form.enrollment_id.choices = _choices()
    record = None
    status = 200
    if form.validate_on_submit():
        enr = db.session.get(Enrollment, form.enrollment_id.data) if form.enrollment_id.data else None
        try:
            if enr is None:
                raise ValidationFailed("Choose a participant.", field="enrollment_id")
            record = read_or_404(clinical_access.break_glass, acting_user(), enr, form.reason.data or "",
                                 ctx=request_context(), now=now_utc())
        except ValidationFailed as exc:
            show_domain_error(form, exc)
            status = 422
    elif form.is_submitted():
        status = 422
    return render_template("admin/break_glass.html", form=form, record=record, labels=clearance_status.DECISION_LABELS,
                           sections={"text": screening.TEXT_QUESTIONS, "numbers": screening.NUMBER_QUESTIONS,
                                     "conditions": screening.CONDITIONS}), status
