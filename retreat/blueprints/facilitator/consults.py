"""Facilitator portal: consult availability (with a week preview), consult list and outcomes."""

from __future__ import annotations

from datetime import date, timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField, URLField
from wtforms.validators import NumberRange, Optional

from retreat import audit
from retreat.accounts.models import Role
from retreat.blueprints.consults.forms import choices, zone_choices
from retreat.blueprints.facilitator import bp
from retreat.consults import booking as bookings
from retreat.consults import outcomes as consult_outcomes
from retreat.consults import prescreen, publishing
from retreat.consults import settings as consult_limits
from retreat.core import urls
from retreat.core.errors import DomainError, ValidationFailed
from retreat.timeutil import now_utc, zone
from retreat.web import transaction
from retreat.web.forms import (
    DataRequired,
    DateField,
    IntegerField,
    Length,
    ZoneField,
    refused,
    show_domain_error,
    strip,
)
from retreat.web.hooks import no_store
from retreat.web.security import request_context, roles_required


def _limit(field: str, *, required: bool = False, hours: bool = False) -> dict:
    """An IntegerField's validators and default from the settings' one table of limits
    (``retreat.consults.settings.SETTINGS``); ``hours`` shows a setting kept in minutes as hours."""
    limit = consult_limits.SETTINGS[field]
    scale = 60 if hours else 1
    default = limit.default // scale if limit.default is not None else None
    return {"validators": [DataRequired() if required else Optional(), NumberRange(limit.low // scale,
                                                                                   limit.high // scale)],
            "default": default}


class SettingsForm(FlaskForm):
    tz = ZoneField("Your time zone")
    duration_minutes = IntegerField("Consult length (minutes)", **_limit("duration_minutes", required=True))
    slot_interval_minutes = IntegerField("Offer a start time every (minutes)",
                                         **_limit("slot_interval_minutes", required=True))
    buffer_before_minutes = IntegerField("Buffer before (minutes)", **_limit("buffer_before_minutes"))
    buffer_after_minutes = IntegerField("Buffer after (minutes)", **_limit("buffer_after_minutes"))
    min_notice_hours = IntegerField("Minimum notice (hours)", **_limit("min_notice_minutes", hours=True))
    horizon_days = IntegerField("Bookable up to (days ahead)", **_limit("horizon_days", required=True))
    daily_cap = IntegerField("Most consults per day", **_limit("daily_cap"))
    change_cutoff_hours = IntegerField("Guests can change until (hours before)", **_limit("change_cutoff_hours"))
    video_link = URLField("Video-call link", filters=[strip],
                          validators=[Optional(), Length(max=consult_limits.MAX_LEN["video_link"])])
    accepting_bookings = BooleanField("Take consult bookings", default=consult_limits.ACCEPTING_BOOKINGS_DEFAULT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz.choices = zone_choices()


class WeeklyForm(FlaskForm):
    pass


for _i, _name in enumerate(publishing.WEEKDAYS):
    setattr(WeeklyForm, f"day_{_i}", StringField(_name, filters=[strip], validators=[Optional(), Length(max=300)]))


class OverrideForm(FlaskForm):
    day = DateField("Date", validators=[DataRequired("Enter the date.")])
    kind = SelectField("Change", choices=choices([("off", "Day off (no consults)"), ("blocked", "Block some hours"),
                                                  ("extra", "Add extra hours")]))
    start = StringField("From", filters=[strip], validators=[Optional(), Length(max=5)])
    end = StringField("To", filters=[strip], validators=[Optional(), Length(max=5)])
    note = StringField("Note (only you see it)", filters=[strip], validators=[Optional(), Length(max=consult_limits.MAX_LEN["note"])])


class OutcomeForm(FlaskForm):
    outcome = SelectField("Outcome", choices=choices(consult_outcomes.OUTCOMES))
    recommended_cohort = StringField("Recommended cohort (if any)", filters=[strip],
                                     validators=[Optional(), Length(max=consult_limits.MAX_LEN["recommended_cohort"])])
    notes = TextAreaField("Notes", filters=[strip],
                          validators=[Optional(), Length(max=consult_limits.MAX_LEN["outcome_notes"])])


class CancelForm(FlaskForm):
    pass


def _me():
    return current_user._get_current_object()


def _settings_form(settings) -> SettingsForm:
    form = SettingsForm(prefix="s")
    if not form.is_submitted() and settings is not None:
        form.tz.data = settings.tz
        for key in ("duration_minutes", "slot_interval_minutes", "buffer_before_minutes", "buffer_after_minutes",
                    "horizon_days", "daily_cap", "change_cutoff_hours", "video_link", "accepting_bookings"):
            getattr(form, key).data = getattr(settings, key)
        form.min_notice_hours.data = settings.min_notice_minutes // 60
    elif not form.is_submitted():  # a new facilitator: the fields' defaults are the model's
        form.tz.data = _me().tz
    return form


def _week_start(now, tz) -> date:
    """The first of the seven previewed days: ``?week=`` or today (a rolling week, so it always shows ahead)."""
    return publishing.parse_local_date(request.args.get("week")) or now.astimezone(zone(tz)).date()


def _render_editor(settings_form=None, weekly_form=None, override_form=None, status=200):
    me = _me()
    now = now_utc()
    settings = publishing.get_settings(me)
    tz = settings.tz if settings else me.tz
    if weekly_form is None:
        weekly_form = WeeklyForm(prefix="w", formdata=None)
        rules = publishing.weekly_rules(me)
        for i in range(7):
            getattr(weekly_form, f"day_{i}").data = publishing.format_windows(rules.get(i, []))
    week_start = _week_start(now, tz)
    return render_template(
        "facilitator/consults_availability.html",
        settings=settings, tz=tz,
        settings_form=settings_form or _settings_form(settings),
        weekly_form=weekly_form,
        override_form=override_form or OverrideForm(prefix="o", formdata=None),
        overrides=publishing.upcoming_overrides(me, now),
        preview=publishing.week_preview(me, week_start, now), week_start=week_start,
        prev_week=week_start - timedelta(days=7), next_week=week_start + timedelta(days=7),
        format_clock=publishing.format_clock, time_label=publishing.time_label, today=now.astimezone(zone(tz)).date(),
        delete_form=CancelForm(prefix="d", formdata=None),
    ), status


@bp.get("/availability")
@roles_required(Role.FACILITATOR)  # their own calendar: admins manage cohorts, not calendars
def availability():
    return _render_editor()


def _save(form, form_name: str, action, done: str, *, mapping: dict | None = None, go_to: str | None = None):
    """Validate ``form``, run the service call, commit once; on errors show the editor with them (422)."""
    if not form.validate_on_submit():
        return _render_editor(**{form_name: form}, status=422)
    try:
        action()
    except ValidationFailed as exc:
        show_domain_error(form, exc, mapping)
        return _render_editor(**{form_name: form}, status=422)
    flash(done, "success")
    return redirect(go_to or url_for("facilitator.availability"))


@bp.post("/availability/settings")
@roles_required(Role.FACILITATOR)
def availability_settings():
    me = _me()
    form = _settings_form(publishing.get_settings(me))
    cutoff = form.change_cutoff_hours.data
    return _save(form, "settings_form", lambda: publishing.update_settings(
        me, tz=form.tz.data, duration_minutes=form.duration_minutes.data,
        buffer_before_minutes=form.buffer_before_minutes.data or 0,
        buffer_after_minutes=form.buffer_after_minutes.data or 0,
        min_notice_minutes=(form.min_notice_hours.data or 0) * 60, horizon_days=form.horizon_days.data,
        daily_cap=form.daily_cap.data, slot_interval_minutes=form.slot_interval_minutes.data,
        change_cutoff_hours=cutoff if cutoff is not None else consult_limits.default("change_cutoff_hours"),
        video_link=form.video_link.data,
        accepting_bookings=form.accepting_bookings.data, actor=me, ctx=request_context()),
        "Consult settings saved.", mapping={"min_notice_minutes": "min_notice_hours"})


@bp.post("/availability/weekly")
@roles_required(Role.FACILITATOR)
def availability_weekly():
    me = _me()
    form = WeeklyForm(prefix="w")
    return _save(form, "weekly_form", lambda: publishing.set_weekly_rules(
        me, {i: getattr(form, f"day_{i}").data for i in range(7)}, actor=me, ctx=request_context()),
        "Weekly hours saved.")


@bp.post("/availability/overrides")
@roles_required(Role.FACILITATOR)
def availability_override_add():
    me = _me()
    form = OverrideForm(prefix="o")
    return _save(form, "override_form", lambda: publishing.add_override(
        me, day=form.day.data, kind=form.kind.data, start=form.start.data, end=form.end.data, note=form.note.data,
        now=now_utc(), actor=me, ctx=request_context()),
        "Date change saved.", go_to=url_for("facilitator.availability", week=form.day.data.isoformat())
        if form.day.data else None)


@bp.post("/availability/overrides/<int:override_id>/delete")
@roles_required(Role.FACILITATOR)
def availability_override_delete(override_id):
    me = _me()
    if not CancelForm(prefix="d").validate_on_submit():
        flash("Your form expired. Please try again.", "warning")
        return redirect(url_for("facilitator.availability"))
    publishing.delete_override(me, override_id, actor=me, ctx=request_context())
    flash("Date change removed.", "success")
    return redirect(url_for("facilitator.availability"))


# ------------------------------------------------------------------------------------------
# Consults
# ------------------------------------------------------------------------------------------


@bp.get("/consults")
@roles_required(Role.FACILITATOR)
def consults():
    me = _me()
    now = now_utc()
    settings = publishing.get_settings(me)
    tz = settings.tz if settings else me.tz
    lists = consult_outcomes.facilitator_consults(me, now)
    return render_template("facilitator/consults_list.html", tz=tz, now=now, has_settings=settings is not None,
                           **lists)


@bp.get("/consults/<int:consult_id>")
@no_store
@roles_required(Role.FACILITATOR)
def consult_detail(consult_id):
    me = _me()
    now = now_utc()
    consult = consult_outcomes.get_for_facilitator(me, consult_id)
    return _render_detail(consult, now)


def _render_detail(consult, now, outcome_form=None, status=200):
    me = _me()
    settings = publishing.get_settings(me)
    tz = settings.tz if settings else me.tz
    audit.record("consult.viewed", actor=me, object_type="consultation", object_id=consult.id,
                 ctx=request_context(), now=now)
    transaction.keep("the consult.viewed audit event, also when the page shows a refused form")
    if outcome_form is None:
        outcome_form = OutcomeForm(formdata=None)
        if consult.status in ("completed", "no_show"):
            outcome_form.outcome.data = consult.status
            outcome_form.recommended_cohort.data = consult.recommended_cohort
            outcome_form.notes.data = prescreen.consult_outcome_notes(consult)
    history = [c for c in consult_outcomes.consults_for_participant(consult.participant) if c.id != consult.id] \
        if consult.participant else []
    return render_template(
        "facilitator/consults_detail.html", consult=consult, tz=tz, now=now,
        reason=prescreen.consult_reason(consult), questions=prescreen.answered_questions(consult), history=history,
        outcome_form=outcome_form, cancel_form=CancelForm(formdata=None),
        can_record=consult.status != "cancelled" and consult.start_at <= now,
        can_cancel=consult.status == "booked" and consult.end_at > now,
    ), status


@bp.post("/consults/<int:consult_id>/outcome")
@no_store
@roles_required(Role.FACILITATOR)
def consult_outcome(consult_id):
    me = _me()
    now = now_utc()
    consult = consult_outcomes.get_for_facilitator(me, consult_id, lock=True)
    form = OutcomeForm()
    if not form.validate_on_submit():
        return _render_detail(consult, now, outcome_form=form, status=422)
    try:
        consult_outcomes.record_outcome(consult, facilitator=me, outcome=form.outcome.data,
                           recommended_cohort=form.recommended_cohort.data, notes=form.notes.data, now=now,
                           ctx=request_context())
    except ValidationFailed as exc:
        show_domain_error(form, exc)
        return _render_detail(consult, now, outcome_form=form, status=422)
    except DomainError as exc:
        refused(exc.message, "warning")
        return redirect(url_for("facilitator.consult_detail", consult_id=consult.id))
    flash("Outcome recorded.", "success")
    return redirect(url_for("facilitator.consult_detail", consult_id=consult.id))


@bp.post("/consults/<int:consult_id>/cancel")
@roles_required(Role.FACILITATOR)
def consult_cancel(consult_id):
    me = _me()
    now = now_utc()
    consult = consult_outcomes.get_for_facilitator(me, consult_id, lock=True)
    if not CancelForm().validate_on_submit():
        flash("Your form expired. Please try again.", "warning")
        return redirect(url_for("facilitator.consult_detail", consult_id=consult.id))
    try:
        bookings.cancel(consult, by="facilitator", actor=me, base_url=urls.base_url(), now=now,
                   ctx=request_context())
    except DomainError as exc:
        refused(exc.message, "warning")
        return redirect(url_for("facilitator.consult_detail", consult_id=consult.id))
    flash("The consult is cancelled and the guest has been told by email.", "success")
    return redirect(url_for("facilitator.consults"))
