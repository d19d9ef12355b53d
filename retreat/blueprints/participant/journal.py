"""The participant's integration journal: private entries across the realms of integration, each
shareable with the facilitators of one of their cohorts. Every page is clinical: never cached."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.validators import Optional

from retreat.blueprints.participant import bp
from retreat.core.errors import NotFound, ValidationFailed
from retreat.database import parse_id
from retreat.extensions import db
from retreat.integration import journal
from retreat.integration.journal_models import JournalEntry
from retreat.timeutil import now_utc
from retreat.web.forms import refused, show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


def _retreat_label(enr) -> str:
    return f"{enr.cohort.retreat.title} — {enr.cohort.title}"


class JournalForm(FlaskForm):
    realm = SelectField("Realm", choices=[("", "Choose a realm")] + list(journal.REALM_LABELS.items()),
                        validate_choice=False, validators=[Optional()])
    prompt_key = SelectField("Prompt (optional)", validate_choice=False, validators=[Optional()],
                             choices=[("", "No prompt: write freely")] + [
                                 (key, f"{journal.REALM_LABELS[realm]}: {text}")
                                 for realm, prompts in journal.PROMPTS.items() for key, text in prompts])
    text = TextAreaField("Your entry", validators=[Optional()])
    enrollment_id = SelectField("About which retreat (optional)", validate_choice=False, validators=[Optional()])
    version = HiddenField()

    def set_retreats(self, enrollments) -> None:
        self.enrollment_id.choices = [("", "Not about a particular retreat")] + [
            (str(e.id), _retreat_label(e)) for e in enrollments]


class ShareForm(FlaskForm):
    enrollment_id = SelectField("Share with the facilitators of", validate_choice=False, validators=[Optional()])


class ConfirmForm(FlaskForm):
    version = HiddenField()


def _int(value) -> int | None:
    if value in (None, ""):
        return None
    return parse_id(value) or -1  # never a valid id or version: refused by the service


def _own(entry_id: int) -> JournalEntry:
    try:
        return journal.own_entry(acting_user(), entry_id)
    except NotFound:
        abort(404)


def _form_kwargs(form: JournalForm) -> dict:
    return {"realm": form.realm.data, "prompt_key": form.prompt_key.data, "text": form.text.data,
            "enrollment_id": _int(form.enrollment_id.data)}


@bp.get("/journal")
@no_store
def journal_index():
    user = acting_user()
    realm = request.args.get("realm", "")
    if realm and realm not in journal.REALM_LABELS:
        realm = ""
    page = request.args.get("page", "1")
    page = int(page) if page.isdigit() else 1
    entries, pages = journal.list_own(user, realm=realm or None, page=page)
    page = min(max(1, page), pages)
    teams = {e.id: journal.cohort_team(e.cohort_id) for e in journal.own_enrollments(user)}
    return render_template("participant/journal_index.html", entries=entries, realm=realm, page=page, pages=pages,
                           realms=journal.REALM_LABELS, prompts=journal.PROMPTS, teams=teams,
                           retreat_label=_retreat_label)


@bp.route("/journal/new", methods=["GET", "POST"])
@no_store
def journal_new():
    user = acting_user()
    enrollments = journal.own_enrollments(user)
    form = JournalForm()
    form.set_retreats(enrollments)
    status = 200
    if request.method == "GET":
        prompt = request.args.get("prompt", "")
        realm = request.args.get("realm", "")
        if prompt in journal.PROMPT_TEXT:
            form.prompt_key.data, realm = prompt, journal.PROMPT_REALM[prompt]
        if realm in journal.REALM_LABELS:
            form.realm.data = realm
        if len(enrollments) == 1:
            form.enrollment_id.data = str(enrollments[0].id)
    elif form.validate_on_submit():
        try:
            journal.create(user, **_form_kwargs(form), now=now_utc(), ctx=request_context())
        except ValidationFailed as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            flash("Your entry is saved. It is private to you unless you share it.", "success")
            return redirect(url_for("participant.journal_index"))
    else:
        status = 422
    return render_template("participant/journal_form.html", form=form, entry=None, prompts=journal.PROMPT_TEXT,
                           stale=None), status


@bp.route("/journal/<int:entry_id>/edit", methods=["GET", "POST"])
@no_store
def journal_edit(entry_id: int):
    user = acting_user()
    entry = _own(entry_id)
    form = JournalForm()
    form.set_retreats(journal.own_enrollments(user))
    status = 200
    stale = None
    if request.method == "GET":
        current = journal.open_entry(entry)
        form.realm.data, form.prompt_key.data, form.text.data = entry.realm, entry.prompt_key or "", current.text
        form.enrollment_id.data = str(entry.enrollment_id or "")
        form.version.data = str(entry.version)
    elif form.validate_on_submit():
        try:
            journal.update_entry(user, entry, expected_version=_int(form.version.data), **_form_kwargs(form),
                                 now=now_utc(), ctx=request_context())
        except journal.StaleEntry as exc:
            db.session.expire_all()  # show the saved version, not the one this request loaded
            entry = _own(entry_id)
            stale = journal.open_entry(entry)  # the saved version, next to the text the person typed
            form.version.data = str(entry.version)
            flash(exc.message, "error")
            status = 409
        except ValidationFailed as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            flash("Your changes are saved.", "success")
            return redirect(url_for("participant.journal_index"))
    else:
        status = 422
    return render_template("participant/journal_form.html", form=form, entry=entry, prompts=journal.PROMPT_TEXT,
                           stale=stale), status


@bp.route("/journal/<int:entry_id>/delete", methods=["GET", "POST"])
@no_store
def journal_delete(entry_id: int):
    user = acting_user()
    entry = _own(entry_id)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            journal.delete_entry(user, entry, expected_version=_int(form.version.data), now=now_utc(),
                                 ctx=request_context())
        except journal.StaleEntry as exc:
            refused(exc.message, "error")
            return redirect(url_for("participant.journal_delete", entry_id=entry_id))
        flash("The entry is deleted.", "success")
        return redirect(url_for("participant.journal_index"))
    form.version.data = str(entry.version)
    return render_template("participant/journal_delete.html", form=form, item=journal.open_entry(entry))


@bp.route("/journal/<int:entry_id>/share", methods=["GET", "POST"])
@no_store
def journal_share(entry_id: int):
    user = acting_user()
    entry = _own(entry_id)
    enrollments = journal.own_enrollments(user)
    form = ShareForm()
    form.enrollment_id.choices = [(str(e.id), _retreat_label(e)) for e in enrollments]
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        try:
            journal.share(user, entry, enrollment_id=_int(form.enrollment_id.data), now=now_utc(),
                          ctx=request_context())
        except ValidationFailed as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            flash("The entry is shared with that cohort's facilitators. You can stop sharing at any time.", "success")
            return redirect(url_for("participant.journal_index"))
    elif request.method == "POST":
        status = 422
    else:
        form.enrollment_id.data = str(entry.enrollment_id or (enrollments[0].id if enrollments else ""))
    teams = {e.id: journal.cohort_team(e.cohort_id) for e in enrollments}
    return render_template("participant/journal_share.html", form=form, item=journal.open_entry(entry),
                           enrollments=enrollments, teams=teams, retreat_label=_retreat_label), status


@bp.post("/journal/<int:entry_id>/unshare")
@no_store
def journal_unshare(entry_id: int):
    user = acting_user()
    entry = _own(entry_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    journal.unshare(user, entry, now=now_utc(), ctx=request_context())
    flash("The entry is private again: facilitators can no longer open it.", "success")
    return redirect(url_for("participant.journal_index"))
