"""Facilitator (and admin) pages: retreats, cohorts, sessions, pipeline board, waitlist, roster,
check-in, notes, lodging, consents. Statuses only: no clinical data is shown here.
"""

from __future__ import annotations

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from retreat import audit
from retreat.accounts import practice
from retreat.accounts.models import ProviderOrganization, Role, User
from retreat.blueprints.facilitator import bp
from retreat.blueprints.facilitator.cohort_forms import (
    CohortForm,
    ConsentForm,
    LodgingForm,
    NoteForm,
    ReasonForm,
    RetreatForm,
    SessionForm,
    StatusForm,
    local_to_utc,
)
from retreat.clinical import dosing_board, roster, staffing
from retreat.cohorts import catalog as svc
from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import CohortSession, Enrollment, Retreat
from retreat.core.cache_versions import roster_version
from retreat.core.errors import DomainError, NotFound
from retreat.extensions import db
from retreat.payments import refund_policy
from retreat.timeutil import now_utc, to_local
from retreat.web import page_cache
from retreat.web.forms import refused, show_domain_error, status_for
from retreat.web.security import acting_user, request_context, require_object


def _upload_dir() -> str:
    return str(current_app.config.get("UPLOAD_DIR") or (current_app.instance_path + "/uploads"))


def _cohort(cohort_id: int):
    try:
        return svc.get_cohort(cohort_id)
    except NotFound:
        abort(404)


def _enrollment(enrollment_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enrollment_id)
    require_object(enr is not None)
    return enr


def _orgs():
    return list(db.session.scalars(select(ProviderOrganization).where(ProviderOrganization.is_active.is_(True))
                                   .order_by(ProviderOrganization.name)))


def _facilitators():
    return list(db.session.scalars(select(User).where(User.role.in_([Role.FACILITATOR.value, Role.ADMIN.value]))
                                   .order_by(User.name)))


# --------------------------------------------------------------------------------------------
# Retreats
# --------------------------------------------------------------------------------------------


@bp.get("/cohorts")
def cohorts():
    return render_template("facilitator/cohort_list.html", retreats=svc.all_retreats(), svc=svc)


@bp.route("/retreats/new", methods=["GET", "POST"])
@bp.route("/retreats/<int:retreat_id>/edit", methods=["GET", "POST"])
def retreat_form(retreat_id: int | None = None):
    retreat = db.session.get(Retreat, retreat_id) if retreat_id else None
    if retreat_id and retreat is None:
        abort(404)
    form = RetreatForm(obj=retreat)
    if form.validate_on_submit():
        now = now_utc()
        try:
            retreat = svc.save_retreat(retreat, title=form.title.data, slug=form.slug.data or "",
                                       summary=form.summary.data or "", description=form.description.data or "",
                                       location=form.location.data or "", included=form.included.data or "",
                                       is_published=form.is_published.data, actor=acting_user(), now=now)
            upload = form.guide.data
            if upload and getattr(upload, "filename", ""):
                data = upload.read(svc.GUIDE_MAX_BYTES + 1)
                svc.store_guide(retreat, filename=upload.filename, data=data, upload_dir=_upload_dir(),
                                actor=acting_user(), now=now)
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Saved “{retreat.title}”.", "success")
            return redirect(url_for("facilitator.cohorts"))
    return render_template("facilitator/cohort_retreat_form.html", form=form, retreat=retreat), status_for(form)


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------


def _cohort_input(form: CohortForm) -> svc.CohortInput:
    tz = form.timezone.data
    return svc.CohortInput(
        title=form.title.data, starts_at=local_to_utc(form.starts_at.data, tz),
        ends_at=local_to_utc(form.ends_at.data, tz), timezone=tz, capacity=form.capacity.data,
        currency=form.currency.data, price_minor=form.price_minor, deposit_minor=form.deposit_minor,
        balance_due_on=form.balance_due_on.data, refund_policy=form.refund_policy.data or "",
        deposit_timing=form.deposit_timing.data, provider_organization_id=form.provider_organization_id.data or None,
        hold_minutes=form.hold_minutes.data, offer_hours=form.offer_hours.data,
        screening_fee_minor=form.screening_fee_minor)


@bp.route("/retreats/<int:retreat_id>/cohorts/new", methods=["GET", "POST"])
@bp.route("/cohorts/<int:cohort_id>/edit", methods=["GET", "POST"])
def cohort_form(retreat_id: int | None = None, cohort_id: int | None = None):
    cohort = _cohort(cohort_id) if cohort_id else None
    retreat = cohort.retreat if cohort else db.session.get(Retreat, retreat_id)
    if retreat is None:
        abort(404)
    form = CohortForm(orgs=_orgs())
    if request.method == "GET":
        if cohort is not None:
            from retreat.money import from_minor

            form.title.data, form.timezone.data, form.capacity.data = cohort.title, cohort.timezone, cohort.capacity
            form.starts_at.data = to_local(cohort.starts_at, cohort.timezone).replace(tzinfo=None)
            form.ends_at.data = to_local(cohort.ends_at, cohort.timezone).replace(tzinfo=None)
            form.currency.data = cohort.currency
            form.price.data = str(from_minor(cohort.price_minor, cohort.currency))
            form.deposit.data = str(from_minor(cohort.deposit_minor, cohort.currency))
            form.screening_fee.data = (str(from_minor(cohort.screening_fee_minor, cohort.currency))
                                       if cohort.screening_fee_minor else "")
            form.balance_due_on.data, form.refund_policy.data = cohort.balance_due_on, cohort.refund_policy
            form.deposit_timing.data = cohort.deposit_timing
            form.provider_organization_id.data = cohort.provider_organization_id or 0
            form.hold_minutes.data, form.offer_hours.data = cohort.hold_minutes, cohort.offer_hours
            form.set_tiers(refund_policy.schedule(cohort))
            if cohort.refund_policy and not refund_policy.notes_shown(cohort):
                # Free text from before the tiers that states percentages: not prefilled (it may
                # disagree with the tiers); shown above the notes so its other parts can be kept.
                form.refund_policy.data = ""
                form.refund_policy.description = ("The old refund text stated percentages and is no longer "
                                                  f"shown to participants: “{cohort.refund_policy}”")
        else:
            form.timezone.data = practice.timezone()
            form.set_tiers(refund_policy.DEFAULT_SCHEDULE)
    if form.validate_on_submit():
        try:
            tiers = refund_policy.check_tiers(form.tier_rows())
            before = refund_policy.schedule(cohort) if cohort is not None else None
            cohort = svc.save_cohort(cohort, retreat, _cohort_input(form), actor=acting_user(), now=now_utc())
            if tiers != before:
                refund_policy.set_schedule(cohort, tiers)
                audit.record("payments.refund_schedule_set", actor=acting_user(), object_type="cohort",
                             object_id=cohort.id, ctx=request_context(), now=now_utc(),
                             details={"tiers": [list(t) for t in tiers],
                                      "before": [list(t) for t in before] if before else None})
        except DomainError as exc:
            show_domain_error(form, exc, fields={"tiers": ""})
        else:
            flash(f"Saved “{cohort.title}”.", "success")
            return redirect(url_for("facilitator.cohort_overview", cohort_id=cohort.id))
    return render_template("facilitator/cohort_form.html", form=form, cohort=cohort, retreat=retreat), status_for(form)


@bp.get("/cohorts/<int:cohort_id>")
def cohort_overview(cohort_id: int):
    cohort = _cohort(cohort_id)
    status_form = StatusForm(status=cohort.status)
    return render_template("facilitator/cohort_overview.html", cohort=cohort, svc=svc, board=svc.board(cohort),
                           columns=enrollment.PIPELINE, exits=enrollment.EXITS, label=enrollment.label,
                           waiting=seats.entries(cohort.id), status_form=status_form,
                           session_form=SessionForm(facilitators=_facilitators()),
                           reason_form=ReasonForm(),
                           uncovered=staffing.uncovered_soon(now_utc(), cohort_ids=[cohort.id]))


@bp.post("/cohorts/<int:cohort_id>/status")
def cohort_status(cohort_id: int):
    cohort = _cohort(cohort_id)
    form = StatusForm()
    if form.validate_on_submit():
        try:
            svc.set_status(cohort, form.status.data, actor=acting_user(), now=now_utc())
            flash(f"The cohort is now {cohort.status}." + (
                " Every participant was emailed, and everything paid is being refunded in full."
                if cohort.status == "cancelled" else ""), "success")
        except DomainError as exc:
            refused(exc.message, "error")
    else:
        flash("Choose a status.", "error")
    return redirect(url_for("facilitator.cohort_overview", cohort_id=cohort.id))


@bp.post("/cohorts/<int:cohort_id>/sessions")
def session_add(cohort_id: int):
    cohort = _cohort(cohort_id)
    form = SessionForm(facilitators=_facilitators())
    if form.validate_on_submit():
        try:
            svc.add_session(cohort, kind=form.kind.data, title=form.title.data or "",
                            starts_at=local_to_utc(form.starts_at.data, cohort.timezone),
                            ends_at=local_to_utc(form.ends_at.data, cohort.timezone),
                            location=form.location.data or "", video_url=form.video_url.data or "",
                            facilitator_id=form.facilitator_id.data or None, actor=acting_user(), now=now_utc())
            flash("Session added.", "success")
        except DomainError as exc:
            refused(exc.message + " " + " ".join(m for msgs in exc.errors.values() for m in msgs), "error")
    else:
        flash("Check the session: " + "; ".join(f"{form[k].label.text}: {' '.join(v)}"
                                                 for k, v in form.errors.items() if k in form._fields), "error")
    return redirect(url_for("facilitator.cohort_overview", cohort_id=cohort.id) + "#sessions")


@bp.post("/sessions/<int:session_id>/delete")
def session_delete(session_id: int):
    s = db.session.get(CohortSession, session_id)
    require_object(s is not None)
    cohort_id = s.cohort_id
    try:
        svc.delete_session(s, actor=acting_user(), now=now_utc())
        flash("Session removed.", "success")
    except DomainError as exc:
        refused(exc.message, "error")
    return redirect(url_for("facilitator.cohort_overview", cohort_id=cohort_id) + "#sessions")


# --------------------------------------------------------------------------------------------
# Roster, check-in, CSV
# --------------------------------------------------------------------------------------------


@bp.get("/cohorts/<int:cohort_id>/roster")
def cohort_roster(cohort_id: int):
    status_filter = request.args.get("status", "active")
    valid = set(roster.ROSTER_FILTERS) | {"all"} | {s.value for s in enrollment.PIPELINE} | {
        s.value for s in enrollment.EXITS}
    if status_filter not in valid:
        status_filter = "active"
    me = acting_user()
    page = request.args.get("page", "1")
    page = int(page) if page.isdigit() else 1
    # The page is kept per viewer session under the roster's version, read before anything else
    # (see cache_versions): a deleted or changed cohort has a new version, so a kept page is one
    # of a cohort that exists as shown. A page showing a provider's shared conditions is never
    # kept, since every read of those is checked and audited.
    ttl = page_cache.versioned_ttl("ROSTER_CACHE_SECONDS", 30)
    version = roster_version(cohort_id) if ttl else None

    def render():
        cohort = _cohort(cohort_id)
        result = roster.roster_page(cohort, page=page, status_filter=status_filter, now=now_utc(),
                                 ctx=request_context(), viewer=me if me.role == Role.FACILITATOR else None)
        # Rendered before the commit (the audit events of reading shareable conditions), which would
        # otherwise expire every loaded row and reload each one while rendering.
        body = Markup(render_template("facilitator/_roster_body.html", cohort=cohort, rows=result.rows,
                                      result=result, svc=svc, status_filter=status_filter,
                                      filters=roster.ROSTER_FILTERS))
        title = cohort.title
        html = render_template("facilitator/cohort_roster.html", title=title, body=body)
        return html, 200, not any(r.shareable_conditions for r in result.rows)

    return page_cache.signed_in_page(("roster", cohort_id, status_filter, page), version, ttl, render)


@bp.get("/cohorts/<int:cohort_id>/roster.csv")
def cohort_roster_csv(cohort_id: int):
    cohort = _cohort(cohort_id)
    return Response(roster.roster_csv(cohort), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="cohort-{cohort.id}-roster.csv"'})


@bp.get("/sessions/<int:session_id>/checkin")
def session_checkin(session_id: int):
    s = db.session.get(CohortSession, session_id)
    require_object(s is not None)
    rows = svc.checkin_rows(s)
    dosing_day = s.kind == "dosing"
    team = {r.enrollment_id: r for r in dosing_board.team_view(
        s, acting_user(), now=now_utc(), ctx=request_context())} if dosing_day else {}
    return render_template("facilitator/cohort_checkin.html", session=s, cohort=s.cohort, rows=rows,
                           clearance=svc.session_clearance(s, [enr for enr, _ in rows]),
                           kinds=svc.SESSION_KIND_LABELS, team=team,
                           cover=staffing.coverage([s])[s.id] if dosing_day else None)


@bp.post("/sessions/<int:session_id>/checkin/<int:enrollment_id>")
def session_mark(session_id: int, enrollment_id: int):
    s = db.session.get(CohortSession, session_id)
    require_object(s is not None)
    enr = _enrollment(enrollment_id)
    try:
        status = request.form.get("status", "")
        if s.kind == "dosing" and status in ("present", "late"):
            dosing_board.require_ready_for_checkin(s, enr)
        svc.record_attendance(s, enr, status=status, actor=acting_user(), now=now_utc())
    except DomainError as exc:
        refused(exc.message, "error")
    return redirect(url_for("facilitator.session_checkin", session_id=s.id) + f"#p{enr.id}")


# --------------------------------------------------------------------------------------------
# One enrollment: history, notes, lodging, decline, attended/completed; waitlist order
# --------------------------------------------------------------------------------------------


@bp.get("/enrollments/<int:enrollment_id>")
def enrollment_detail(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    return render_template("facilitator/cohort_enrollment.html", enr=enr, cohort=enr.cohort,
                           label=enrollment.label, notes=svc.notes(enr), note_form=NoteForm(),
                           lodging_form=LodgingForm(lodging=enr.lodging), reason_form=ReasonForm(),
                           checklist=preparation.view_items(enr), consent_rows=preparation.consent_status(enr),
                           active=enr.is_active, place=seats.place(enr))


def _back(enr: Enrollment):
    return redirect(request.form.get("next") if request.form.get("next", "").startswith("/facilitator/")
                    else url_for("facilitator.enrollment_detail", enrollment_id=enr.id))


def _do(enr: Enrollment, fn, ok: str):
    try:
        fn()
        flash(ok, "success")
    except DomainError as exc:
        refused(" ".join([exc.message] + [m for msgs in exc.errors.values() for m in msgs if m != exc.message]),
              "error")
    return _back(enr)


@bp.post("/enrollments/<int:enrollment_id>/note")
def enrollment_note(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    form = NoteForm()
    body = form.body.data if form.validate_on_submit() else (request.form.get("body") or "")
    return _do(enr, lambda: svc.add_note(enr, body=body, actor=acting_user(), now=now_utc()), "Note added.")


@bp.post("/enrollments/<int:enrollment_id>/lodging")
def enrollment_lodging(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    lodging = request.form.get("lodging", "")
    return _do(enr, lambda: svc.set_lodging(enr, lodging=lodging, actor=acting_user(), now=now_utc()),
               "Lodging saved.")


@bp.post("/enrollments/<int:enrollment_id>/decline")
def enrollment_decline(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    reason = request.form.get("reason", "")
    return _do(enr, lambda: enrollment.decline(enr, now=now_utc(), actor=acting_user(), reason=reason),
               "Application declined.")


@bp.post("/enrollments/<int:enrollment_id>/attended")
def enrollment_attended(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    return _do(enr, lambda: enrollment.mark_attended(enr, now=now_utc(), actor=acting_user()), "Marked attended.")


@bp.post("/enrollments/<int:enrollment_id>/completed")
def enrollment_completed(enrollment_id: int):
    enr = _enrollment(enrollment_id)
    return _do(enr, lambda: enrollment.mark_completed(enr, now=now_utc(), actor=acting_user()),
               "Marked completed.")


@bp.post("/enrollments/<int:enrollment_id>/waitlist/<direction>")
def waitlist_move(enrollment_id: int, direction: str):
    enr = _enrollment(enrollment_id)
    if direction == "remove":
        reason = request.form.get("reason", "")
        return _do(enr, lambda: enrollment.remove_from_waitlist(enr, now=now_utc(), actor=acting_user(), reason=reason),
                   "Removed from the waitlist.")
    return _do(enr, lambda: seats.move(enr, direction, now=now_utc(), actor=acting_user()), "Waitlist updated.")


# --------------------------------------------------------------------------------------------
# Consent documents
# --------------------------------------------------------------------------------------------


@bp.route("/consents", methods=["GET", "POST"])
def consent_documents():
    form = ConsentForm()
    if form.validate_on_submit():
        try:
            doc = preparation.publish_consent(kind=form.kind.data, title=form.title.data, body=form.body.data,
                                   actor=acting_user(), now=now_utc())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Published {doc.title} version {doc.version}. Participants will be asked to sign it.", "success")
            return redirect(url_for("facilitator.consent_documents"))
    return render_template("facilitator/cohort_consents.html", form=form, documents=preparation.current_consent_documents()), (
        status_for(form))
