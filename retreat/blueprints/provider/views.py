"""Provider portal: the clearance queue of the provider's own organisation, the full intake of a
referred participant, the request-more-information thread and the decision under their licence.

Requests of other organisations do not exist here (404), and every read is audited by
``clinical_access``. Every page is clinical: never cached.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.validators import Optional

from retreat.accounts import users as accounts
from retreat.blueprints.provider import bp
from retreat.clinical import access as clinical_access
from retreat.clinical import clearance, clearance_status, safety, screening
from retreat.clinical.models import ClearanceRequest, Decision, SafetyAlert, ScreeningLevel
from retreat.cohorts import team
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc, zone
from retreat.web.clinical import org_request_or_404, read_or_404
from retreat.web.forms import DateField, refused, show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object

READ_SECTIONS = [clinical_access.ANSWERS, clinical_access.SCREENING, clinical_access.DECISION,
                 clinical_access.THREAD, clinical_access.CONSULT_SAFETY]


class InfoRequestForm(FlaskForm):
    message = TextAreaField("What do you need to know?", validators=[Optional()])
    version = HiddenField()


class DecisionForm(FlaskForm):
    decision = RadioField("Decision", choices=[(d.value, clearance_status.DECISION_LABELS[d]) for d in Decision],
                          validators=[Optional()])
    conditions = TextAreaField("Conditions", validators=[Optional()])
    conditions_shareable = BooleanField("Share these conditions with the retreat team (for example dietary or "
                                        "mobility accommodations)")
    valid_until = DateField("Valid until", validators=[Optional()])
    rationale = TextAreaField("Clinical rationale", validators=[Optional()])
    participant_note = TextAreaField("Note to the participant (optional)", validators=[Optional()])
    attestation_name = StringField("Type your full name to attest", validators=[Optional()])
    version = HiddenField()


class AcknowledgeForm(FlaskForm):
    pass


def _version(form) -> int | None:
    try:
        return int(form.version.data)
    except (TypeError, ValueError):
        return -1  # a form without a version is stale by definition


def _today():
    user = acting_user()
    return now_utc().astimezone(zone(user.tz)).date()


@bp.get("/")
@no_store
def dashboard():
    """The clearance queue (the provider's home)."""
    user = acting_user()
    org_id = user.provider_organization_id
    now = now_utc()
    dosing = team.next_dosing_session(org_id, now)
    return render_template(
        "provider/dashboard.html", user=user, organization=user.provider_organization, today=_today(),
        next_dosing=dosing, dosing_people=team.confirmed_count(dosing.cohort_id) if dosing else 0,
        queue=clearance_status.queue(org_id), closed=clearance_status.recently_closed(org_id),
        alerts=safety.open_alerts(organization_id=org_id), now=now_utc(), ack_form=AcknowledgeForm(),
        license=accounts.valid_license_on(user, _today()), labels=clearance_status.DECISION_LABELS,
        level_labels=screening.LEVEL_LABELS)


def _render_request(req: ClearanceRequest, *, info_form=None, decision_form=None, status=200):
    user = acting_user()
    now = now_utc()
    record = read_or_404(clinical_access.read, user, req.enrollment, READ_SECTIONS, ctx=request_context(), now=now)
    cohort = req.enrollment.cohort
    if decision_form is None:
        decision_form = DecisionForm(formdata=None, data={"valid_until": clearance.default_valid_until(cohort),
                                                          "version": req.version})
    if info_form is None:
        info_form = InfoRequestForm(formdata=None, data={"version": req.version})
    this = next((r for r in record.requests if r.request.id == req.id), None)
    return render_template(
        "provider/request.html", req=req, record=record, this=this, cohort=cohort, participant=req.enrollment.participant,
        sections={"text": screening.TEXT_QUESTIONS, "numbers": screening.NUMBER_QUESTIONS,
                  "conditions": screening.CONDITIONS, "phq9": screening.PHQ9_ITEMS, "gad7": screening.GAD7_ITEMS,
                  "choices": dict(screening.FREQUENCY_CHOICES)},
        info_form=info_form, decision_form=decision_form, license=accounts.valid_license_on(user, _today()),
        labels=clearance_status.DECISION_LABELS, level_labels=screening.LEVEL_LABELS, now=now,
        absolute=req.intake.screening_level == ScreeningLevel.ABSOLUTE,
        attestation_text=clearance.ATTESTATION_TEXT, user=user,
        safety_alert=safety.open_alert_for(req.enrollment_id)), status


@bp.get("/requests/<int:request_id>")
@no_store
def request_detail(request_id: int):
    return _render_request(org_request_or_404(request_id))


def _act(request_id: int, form_class: type[FlaskForm], form_name: str, action, success: str):
    """Run one provider action, ``action(req, form)``, on a request of the provider's organisation:
    field errors re-render the page (422); a conflict (stale form, decided, withdrawn, expired
    licence) changes nothing and says why; success commits once."""
    req = org_request_or_404(request_id)
    form = form_class()
    if form.validate_on_submit():
        try:
            action(req, form)
        except ValidationFailed as exc:
            show_domain_error(form, exc)
        except Conflict as exc:
            refused(exc.message, "error")
            return redirect(url_for("provider.request_detail", request_id=req.id))
        else:
            flash(success, "success")
            return redirect(url_for("provider.request_detail", request_id=req.id))
    return _render_request(req, status=422, **{form_name: form})


@bp.post("/requests/<int:request_id>/info")
@no_store
def request_info(request_id: int):
    return _act(request_id, InfoRequestForm, "info_form", lambda req, form: clearance.request_more_info(
        req, acting_user(), form.message.data or "", expected_version=_version(form), now=now_utc(),
        ctx=request_context()),
        "Your question was sent. The participant is asked to sign in; their intake is open for changes.")


@bp.post("/requests/<int:request_id>/decide")
@no_store
def decide(request_id: int):
    return _act(request_id, DecisionForm, "decision_form", lambda req, form: clearance.decide(
        req, acting_user(), decision=form.decision.data or "", conditions=form.conditions.data or "",
        conditions_shareable=bool(form.conditions_shareable.data), valid_until=form.valid_until.data,
        rationale=form.rationale.data or "", participant_note=form.participant_note.data or "",
        attestation_name=form.attestation_name.data or "", expected_version=_version(form), now=now_utc(),
        ctx=request_context()),
        "Your decision is recorded. The participant is asked to sign in to read it.")


@bp.post("/alerts/<int:alert_id>/acknowledge")
@no_store
def acknowledge_alert(alert_id: int):
    user = acting_user()
    alert = db.session.get(SafetyAlert, alert_id)
    require_object(alert is not None and alert.organization_id == user.provider_organization_id)
    if AcknowledgeForm().validate_on_submit():
        safety.acknowledge_alert(alert, user, now=now_utc(), ctx=request_context())
        flash("Alert acknowledged.", "success")
    return redirect(url_for("provider.dashboard"))
