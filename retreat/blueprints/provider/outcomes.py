"""Outcome charts (PHQ-9, GAD-7 over time) of participants referred to the provider's organisation.

Enrollments never referred to this organisation do not exist here (404, audited as a refused
clinical read); every read of a participant's scores leaves an ``outcomes.read`` audit event.
"""

from __future__ import annotations

from flask import render_template

from retreat.blueprints.participant.outcomes import person_charts
from retreat.blueprints.provider import bp
from retreat.clinical import access as clinical_access
from retreat.clinical import outcome_reports
from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.clinical import read_or_404
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


@bp.get("/outcomes")
@no_store
def outcomes_index():
    user = acting_user()
    return render_template("provider/outcomes_index.html", rows=outcome_reports.referred_participants(
        user.provider_organization_id), organization=user.provider_organization)


@bp.get("/outcomes/<int:enrollment_id>")
@no_store
def participant_outcomes(enrollment_id: int):
    user = acting_user()
    enr = db.session.get(Enrollment, enrollment_id)
    if enr is None:
        read_or_404(_missing, user, enrollment_id)
    person = read_or_404(outcome_reports.read_person, user, enr, ctx=request_context(), now=now_utc())
    return render_template("provider/participant_outcomes.html", person=person, enrollment=enr,
                           charts=person_charts(person, "referred"))


def _missing(user, enrollment_id: int):
    raise clinical_access.refuse(user, enrollment_id, "outcomes", ctx=request_context(), now=now_utc())
