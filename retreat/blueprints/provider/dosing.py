"""Provider dosing days: the organisation's upcoming dosing sessions and who staffs them, the live
board of one session (server-rendered forms that work without JavaScript, a JSON state for
polling), the writes (idempotency key + expected version: a replay returns the stored entry, a
stale version is a 409 showing both versions), and the organisation's thresholds.

Sessions of cohorts referred to another organisation do not exist here (404). Every page is
clinical: never cached.
"""

from __future__ import annotations

import uuid

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, SelectMultipleField
from wtforms.validators import NumberRange

from retreat.accounts.models import Role, User
from retreat.blueprints.provider import bp
from retreat.clinical import dosing, dosing_board, staffing, vitals
from retreat.clinical.dosing_models import LICENSE_KINDS, STATE_LABELS, EntryKind
from retreat.cohorts.models import Enrollment
from retreat.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.forms import InputRequired, IntegerField, refused, show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object, wants_json

WRITE_KINDS = {k.value for k in EntryKind}


class AssignForm(FlaskForm):
    clinician_id = SelectField("Clinician", coerce=str, validate_choice=False)


class CsrfForm(FlaskForm):
    pass


class SettingsForm(FlaskForm):
    accepted_kinds = SelectMultipleField("Licence kinds accepted for dosing sessions",
                                         choices=[(k, k) for k in LICENSE_KINDS])
    hold_systolic = IntegerField("Hold the dose at systolic ≥ (mmHg)", validators=[
        InputRequired(), NumberRange(100, 260)])
    hold_diastolic = IntegerField("or diastolic ≥ (mmHg)", validators=[InputRequired(), NumberRange(60, 160)])
    hr_high = IntegerField("Flag heart rate above (bpm)", validators=[InputRequired(), NumberRange(60, 250)])
    hr_low = IntegerField("Flag heart rate below (bpm)", validators=[InputRequired(), NumberRange(20, 100)])
    spo2_low = IntegerField("Flag SpO2 below (%)", validators=[InputRequired(), NumberRange(80, 100)])
    check_interval_minutes = IntegerField("Observation check every (minutes)", validators=[
        InputRequired(), NumberRange(5, 120)])


def _org():
    user = acting_user()
    require_object(user.provider_organization is not None)
    return user, user.provider_organization


def _session_or_404(session_id: int):
    user, org = _org()
    return user, staffing.dosing_session_for(session_id, org)


def _members(org_id: int) -> list[User]:
    return list(db.session.scalars(select(User).where(
        User.provider_organization_id == org_id, User.role == Role.PROVIDER.value,
        User.is_active_account.is_(True)).order_by(User.name)))


@bp.get("/dosing")
@no_store
def dosing_index():
    user, org = _org()
    sessions = dosing_board.upcoming_sessions(org.id, now_utc())
    members = _members(org.id)
    form = AssignForm()
    form.clinician_id.choices = [(str(m.id), m.name) for m in members]
    assignments = staffing.assignments_of([s.id for s in sessions])
    return render_template("provider/dosing_index.html", sessions=sessions, cover=staffing.coverage(sessions),
                           assignments=assignments,
                           form=form, csrf_form=CsrfForm(), organization=org, day=staffing.session_day)


@bp.post("/dosing/<int:session_id>/assign")
@no_store
def dosing_assign(session_id: int):
    user, session = _session_or_404(session_id)
    form = AssignForm()
    if form.validate_on_submit():
        raw = str(form.clinician_id.data or "")
        clinician = db.session.get(User, int(raw)) if raw.isdigit() and int(raw) < 2**31 else None
        try:
            if clinician is None:
                raise ValidationFailed("Choose a clinician of your organisation.", field="clinician_id")
            staffing.assign(session, clinician, actor=user, ctx=request_context())
        except DomainError as exc:
            refused(exc.message)
        else:
            flash(f"{clinician.name} is assigned to {session.title}.", "success")
    else:
        refused("The form expired; please try again.")
    return redirect(url_for("provider.dosing_index"))


@bp.post("/dosing/<int:session_id>/unassign/<int:clinician_id>")
@no_store
def dosing_unassign(session_id: int, clinician_id: int):
    user, session = _session_or_404(session_id)
    if CsrfForm().validate_on_submit():
        if staffing.unassign(session, clinician_id, actor=user, ctx=request_context()):
            flash("Assignment removed.", "success")
        else:
            refused("That clinician was not assigned.", "info")
    return redirect(url_for("provider.dosing_index"))


def _board_context(session, user, now):
    rows = dosing_board.provider_board(session, user, now=now, ctx=request_context())
    cover = staffing.coverage([session])[session.id]
    return {"session": session, "rows": rows, "cover": cover, "now": now, "csrf_form": CsrfForm(),
            "routes": dosing.ROUTES, "units": dosing.UNITS, "severities": dosing.SEVERITIES,
            "criteria": dosing.DISCHARGE_CRITERIA, "summary": dosing_board.entry_summary,
            "settings": staffing.settings_for(user.provider_organization), "new_key": lambda: str(uuid.uuid4()),
            "assigned": any(a == user.name for a, _ in cover.clinicians), "labels": STATE_LABELS}


@bp.get("/dosing/<int:session_id>")
@no_store
def dosing_board_page(session_id: int):
    user, session = _session_or_404(session_id)
    return render_template("provider/dosing_board.html", **_board_context(session, user, now_utc()))


def _state_json(session, user, now) -> dict:
    rows = dosing_board.provider_board(session, user, now=now, ctx=request_context())
    return {"session_id": session.id, "now": now.isoformat(), "people": [{
        "enrollment_id": r.enrollment.id, "name": r.enrollment.participant.name, "state": r.state.value,
        "state_label": r.state_label, "version": r.version, "ready": r.readiness.ready,
        "missing": list(r.readiness.missing), "driver": r.readiness.driver,
        "dose_held": bool(r.record and r.record.dose_held),
        "next_check_due_at": r.record.next_check_due_at.isoformat() if r.record and r.record.next_check_due_at else None,
        "entries": [{"id": e.id, "kind": e.kind, "at": e.at.isoformat(), "version_after": e.version_after,
                     "summary": dosing_board.entry_summary(e)} for e in r.entries]} for r in rows]}


@bp.get("/dosing/<int:session_id>/state.json")
@no_store
def dosing_state(session_id: int):
    user, session = _session_or_404(session_id)
    return jsonify(_state_json(session, user, now_utc()))


@bp.post("/dosing/<int:session_id>/people/<int:enrollment_id>/<kind>")
@no_store
def dosing_write(session_id: int, enrollment_id: int, kind: str):
    user, session = _session_or_404(session_id)
    enr = db.session.get(Enrollment, enrollment_id) if enrollment_id < 2**31 else None
    if enr is None or enr.cohort_id != session.cohort_id or kind not in WRITE_KINDS:
        raise NotFound("No such person or entry on this board.")
    as_json = request.is_json or wants_json()
    raw = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(raw, dict):
        return jsonify({"error": "Send a JSON object.", "errors": {}}), 400
    raw = {k: v for k, v in raw.items() if isinstance(v, (str, int, float, bool)) or v is None}
    if not as_json and not CsrfForm().validate_on_submit():
        refused("The form expired; please send it again.")
        return redirect(url_for("provider.dosing_board_page", session_id=session.id))
    now = now_utc()
    try:
        record = dosing.record_for(session, enr)
        result = dosing.write(record, kind, raw, idempotency_key=raw.get("idempotency_key"),
                              expected_version=raw.get("expected_version"), actor=user, now=now,
                              ctx=request_context())
    except dosing.StaleWrite as exc:
        return _stale(session, user, enr, kind, raw, exc, as_json, now)
    except DomainError as exc:
        show_domain_error(CsrfForm(), exc)  # discards the request's changes
        if as_json:
            return jsonify({"error": exc.message, "errors": exc.errors}), exc.status
        return _board_with_error(session, user, enr, kind, exc, now)
    payload = {"entry_id": result.entry.id, "replayed": result.replayed, "version": result.record.version,
               "state": result.record.state, "idempotency_key": result.entry.idempotency_key}
    if as_json:
        return jsonify(payload), 200 if result.replayed else 201
    flash(f"{enr.participant.name}: {'already saved' if result.replayed else 'saved'}.", "success")
    return redirect(url_for("provider.dosing_board_page", session_id=session.id) + f"#person-{enr.id}")


def _stale(session, user, enr, kind, raw, exc, as_json, now):
    from retreat.web import transaction

    transaction.discard("stale dosing write")
    if as_json:
        return jsonify({"error": exc.message, "errors": {"expected_version": [exc.message]},
                        "current_version": exc.current_version, "your_version": exc.expected_version,
                        "submitted": {k: v for k, v in raw.items() if k not in ("csrf_token",)}}), 409
    ctx = _board_context(session, user, now)
    ctx["stale"] = {"enrollment_id": enr.id, "name": enr.participant.name, "kind": kind, "message": exc.message,
                    "yours": exc.expected_version, "current": exc.current_version,
                    "submitted": {k: v for k, v in raw.items() if k not in ("csrf_token", "idempotency_key",
                                                                           "expected_version") and v not in ("", None)}}
    return render_template("provider/dosing_board.html", **ctx), 409


def _board_with_error(session, user, enr, kind, exc, now):
    ctx = _board_context(session, user, now)
    ctx["error"] = {"enrollment_id": enr.id, "name": enr.participant.name, "kind": kind, "message": exc.message,
                    "errors": exc.errors, "values": {k: v for k, v in request.form.items() if k != "csrf_token"}}
    return render_template("provider/dosing_board.html", **ctx), 409 if isinstance(exc, Conflict) else 422


@bp.route("/dosing/settings", methods=["GET", "POST"])
@no_store
def dosing_settings():
    user, org = _org()
    current = staffing.settings_for(org)
    form = SettingsForm(obj=current) if request.method == "GET" else SettingsForm()
    if request.method == "GET":
        form.accepted_kinds.data = current.accepted_kinds
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                staffing.save_settings(org, actor=user, ctx=request_context(), **{
                    f: getattr(form, f).data for f in ("accepted_kinds", "hold_systolic", "hold_diastolic",
                                                       "hr_high", "hr_low", "spo2_low", "check_interval_minutes")})
            except DomainError as exc:
                show_domain_error(form, exc)
            else:
                flash("Dosing settings saved. They apply to readings recorded from now on.", "success")
                return redirect(url_for("provider.dosing_settings"))
        status = 422
    return render_template("provider/dosing_settings.html", form=form, organization=org,
                           ranges=vitals.PHYSICAL_RANGES), status



def _record_rows(session, user):
    """One line per entry, oldest first: what the session record (PDF and CSV) lists."""
    rows = dosing_board.provider_board(session, user, now=now_utc(), ctx=request_context())
    lines = []
    for r in rows:
        for e in r.entries:
            lines.append({"person": r.enrollment.participant.name, "at": e.at, "kind": e.kind.replace("_", " "),
                          "summary": dosing_board.entry_summary(e), "version": e.version_after})
    return rows, sorted(lines, key=lambda x: (x["at"], x["person"]))


@bp.get("/dosing/<int:session_id>/record.pdf")
@no_store
def dosing_record_pdf(session_id: int):
    from retreat.web.pdf import pdf_response

    user, session = _session_or_404(session_id)
    rows, lines = _record_rows(session, user)
    html = render_template("provider/dosing_record_pdf.html", session=session, rows=rows, lines=lines,
                           cover=staffing.coverage([session])[session.id], printed_by=user, printed_at=now_utc())
    return pdf_response(html, f"dosing-session-{session.id}.pdf")


@bp.get("/dosing/<int:session_id>/record.csv")
@no_store
def dosing_record_csv(session_id: int):
    from flask import Response

    from retreat.core.spreadsheet import csv_text
    from retreat.timeutil import to_local

    user, session = _session_or_404(session_id)
    _, lines = _record_rows(session, user)
    rows = [["person", "local_time", "utc_time", "entry", "details", "record_version"]] + [
        [x["person"], to_local(x["at"], session.cohort.timezone).strftime("%Y-%m-%d %H:%M"), x["at"].isoformat(),
         x["kind"], x["summary"], x["version"]] for x in lines]
    return Response(csv_text(rows), mimetype="text/csv", headers={  # every cell formula-safe
        "Content-Disposition": f'attachment; filename="dosing-session-{session.id}.csv"',
        "Cache-Control": "no-store"})
