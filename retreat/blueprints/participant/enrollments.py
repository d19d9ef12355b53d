"""Participant pages: apply, the progress tracker, the seat step, waitlist offers, checklist, consents."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from retreat.blueprints.participant import bp
from retreat.blueprints.participant.enrollment_forms import (
    ApplyForm,
    ChecklistAckForm,
    ChecklistAnswerForm,
    ChecklistDriverForm,
    SignForm,
    WithdrawForm,
)
from retreat.blueprints.participant.payments import StartForm
from retreat.cohorts import catalog as cohort_service
from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import ConsentSignature, Enrollment
from retreat.core.errors import DomainError, NotFound
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments import checkout as payments
from retreat.payments import pricing, refunds
from retreat.payments.models import PaymentKind
from retreat.timeutil import now_utc
from retreat.web.forms import refused, show_domain_error, status_for
from retreat.web.security import acting_user, request_context, require_object


def _own(enrollment_id: int) -> Enrollment:
    enr = db.session.get(Enrollment, enrollment_id)
    require_object(enr is not None and enr.participant_id == acting_user().id)
    return enr


def my_enrollments(user) -> list[Enrollment]:
    return list(db.session.scalars(select(Enrollment).where(Enrollment.participant_id == user.id)
                                   .order_by(Enrollment.applied_at.desc())))


@bp.get("/enrollments")
def enrollments():
    return render_template("participant/enrollments.html", enrollments=my_enrollments(acting_user()),
                           label=enrollment.label)


@bp.route("/cohorts/<int:cohort_id>/apply", methods=["GET", "POST"])
def apply(cohort_id: int):
    try:
        cohort = cohort_service.public_cohort(cohort_id)
    except NotFound:
        require_object(False)
    user = acting_user()
    existing = db.session.scalar(select(Enrollment).where(Enrollment.cohort_id == cohort.id,
                                                          Enrollment.participant_id == user.id))
    if existing is not None and request.method == "GET":
        flash("You have already applied to this cohort; here is your progress.", "info")
        return redirect(url_for("participant.enrollment_detail", enrollment_id=existing.id))
    form = ApplyForm()
    if form.validate_on_submit():
        try:
            enr = enrollment.apply(cohort, user, now=now_utc(), motivation=form.motivation.data or "",
                                   partner_email=form.partner_email.data or None)
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            if enr.screening_fee_due:
                flash("Almost done: pay the screening fee below and your application is submitted.", "info")
            elif enr.is_waitlisted:
                flash(f"Thank you for applying. The cohort is full, so you are on the waitlist (position "
                      f"{seats.place(enr)}). You can prepare meanwhile; we will email you if a seat frees up.",
                      "info")
            else:
                flash("Thank you for applying! Here are your next steps.", "success")
            return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id))
    return render_template("participant/apply.html", form=form, cohort=cohort, svc=cohort_service), status_for(form)


@bp.get("/enrollments/<int:enrollment_id>")
def enrollment_detail(enrollment_id: int):
    enr = _own(enrollment_id)
    now = now_utc()
    cohort = enr.cohort
    return render_template(
        "participant/enrollment.html", enr=enr, cohort=cohort, steps=enrollment.tracker_steps(enr),
        label=enrollment.label, active=enr.is_active, now=now,
        can_pay=seats.can_pay_deposit(cohort, enr) and cohort.status in seats.BOOKABLE,
        hold_valid=enr.seat == "held" and enr.hold_expires_at and enr.hold_expires_at > now,
        offer_valid=enr.seat == "offered" and enr.offer_expires_at and enr.offer_expires_at > now,
        place=seats.place(enr), checklist=preparation.view_items(enr), progress=preparation.progress(enr),
        consent_rows=preparation.consent_status(enr), withdraw_form=WithdrawForm(), svc=cohort_service,
        quote=pricing.quote(enr), deposit_due=payments.amount_due(enr, PaymentKind.DEPOSIT),
        start_form=StartForm(), withdrawal=refunds.withdrawal_quote(enr, now),
        refund_rows=refunds.for_enrollment(enr))


def _act(enr: Enrollment, fn, ok: str | None = None):
    try:
        result = fn()
    except DomainError as exc:
        refused(exc.message, "error")
        return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id))
    if isinstance(result, seats.HoldOutcome):
        flash(result.message, "success" if result.result in ("held", "confirmed") else "warning")
    elif ok:
        flash(ok, "success")
    return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id))


@bp.post("/enrollments/<int:enrollment_id>/hold")
def take_hold(enrollment_id: int):
    enr = _own(enrollment_id)
    return _act(enr, lambda: seats.take_hold(enr, now=now_utc(), actor=acting_user()))


@bp.post("/enrollments/<int:enrollment_id>/offer/accept")
def accept_offer(enrollment_id: int):
    enr = _own(enrollment_id)
    return _act(enr, lambda: seats.accept_offer(enr, now=now_utc(), actor=acting_user()))


@bp.post("/enrollments/<int:enrollment_id>/offer/decline")
def decline_offer(enrollment_id: int):
    enr = _own(enrollment_id)
    return _act(enr, lambda: enrollment.decline_offer(enr, now=now_utc(), actor=acting_user()),
                "You declined the seat; it has been offered to the next person. Thank you for letting us know.")


@bp.post("/enrollments/<int:enrollment_id>/waitlist/leave")
def leave_waitlist(enrollment_id: int):
    enr = _own(enrollment_id)
    return _act(enr, lambda: enrollment.leave_waitlist(enr, now=now_utc(), actor=acting_user()),
                "You have left the waitlist.")


@bp.post("/enrollments/<int:enrollment_id>/withdraw")
def withdraw(enrollment_id: int):
    enr = _own(enrollment_id)
    form = WithdrawForm()
    if not form.validate_on_submit():
        flash("Please keep the reason under 500 characters.", "error")
        return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id))
    now = now_utc()
    back = refunds.withdrawal_quote(enr, now)
    return _act(enr, lambda: enrollment.withdraw(enr, now=now, actor=acting_user(), reason=form.reason.data or ""),
                "Your application is withdrawn. " + (
                    f"Under the cohort's refund policy we are refunding {format_money(back['amount'], back['currency'])} "
                    "to your card; it usually shows within 5-10 days." if back["amount"] else
                    "Under the cohort's refund policy there is nothing to refund.") + (
                    f" The screening fee of {format_money(back['screening_fee_kept'], back['currency'])} is kept."
                    if back["screening_fee_kept"] else ""))


@bp.route("/enrollments/<int:enrollment_id>/checklist/<key>", methods=["GET", "POST"])
def checklist_item(enrollment_id: int, key: str):
    enr = _own(enrollment_id)
    task = preparation.TASKS_BY_KEY.get(key)
    require_object(task is not None and task.kind != "consents")
    item = preparation.get_item(enr, key)
    form = {"ack": ChecklistAckForm, "driver": ChecklistDriverForm}.get(task.kind, ChecklistAnswerForm)()
    ride = preparation.ride_home_from(item.answer) if task.kind == "driver" else None
    if request.method == "GET" and task.kind == "text":
        form.answer.data = item.answer
    if request.method == "GET" and ride is not None and ride.named:
        form.driver_name.data, form.driver_phone.data = ride.name, ride.phone_display
    if form.validate_on_submit():
        try:
            if task.kind == "ack":
                preparation.complete(enr, key, acknowledged=bool(form.acknowledged.data), now=now_utc())
            elif task.kind == "driver":
                preparation.complete(enr, key, driver_name=form.driver_name.data,
                                     driver_phone=form.driver_phone.data, now=now_utc())
            else:
                preparation.complete(enr, key, answer=form.answer.data or "", now=now_utc())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Saved: {task.title}.", "success")
            return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id) + "#checklist")
    return render_template("participant/checklist_item.html", enr=enr, task=task, item=item, form=form,
                           limit=preparation.ANSWER_MAX, ride=ride), status_for(form)


@bp.route("/enrollments/<int:enrollment_id>/consents/<int:document_id>", methods=["GET", "POST"])
def consent_sign(enrollment_id: int, document_id: int):
    enr = _own(enrollment_id)
    try:
        doc = preparation.get_consent_document(document_id)
    except NotFound:
        require_object(False)
    row = next((r for r in preparation.consent_status(enr) if r["document"].id == doc.id), None)
    require_object(row is not None)
    form = SignForm()
    if form.validate_on_submit():
        try:
            preparation.sign_consent(enr, doc, signer=acting_user(), typed_name=form.typed_name.data or "", now=now_utc(),
                          ctx=request_context())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Signed: {doc.title} (version {doc.version}). You can download your signed copy any time.",
                  "success")
            return redirect(url_for("participant.enrollment_detail", enrollment_id=enr.id) + "#consents")
    return render_template("participant/consent_sign.html", enr=enr, doc=doc, row=row, form=form), status_for(form)


@bp.get("/enrollments/<int:enrollment_id>/consents/signed/<int:signature_id>.txt")
def consent_download(enrollment_id: int, signature_id: int):
    enr = _own(enrollment_id)
    sig = db.session.get(ConsentSignature, signature_id)
    require_object(sig is not None and sig.enrollment_id == enr.id)
    filename = f"{sig.document.kind}-v{sig.document.version}-signed.txt"
    return Response(preparation.signed_copy(sig), mimetype="text/plain; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.app_template_global("my_enrollments")
def _my_enrollments_global() -> list[Enrollment]:
    user = acting_user()
    return my_enrollments(user) if user is not None else []


@bp.app_template_global("enrollment_label")
def _enrollment_label(status: str) -> str:
    return enrollment.label(status)
