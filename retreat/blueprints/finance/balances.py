"""Balances due: aging per cohort and per participant, and balance reminders."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import viewer_today
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import DomainError
from retreat.core.pagination import Page
from retreat.extensions import db
from retreat.finance import reports as finance_reports
from retreat.payments import balances
from retreat.timeutil import now_utc
from retreat.web.forms import refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object

PER_PAGE = 50


class BalancesFilterForm(FlaskForm):
    class Meta:
        csrf = False

    cohort = SelectField("Cohort", choices=[], default="")
    bucket = SelectField("Aging", choices=[("", "Any")] + [(b, balances.BUCKET_LABELS[b]) for b in balances.BUCKETS],
                         default="")

    def __init__(self, *args, **kwargs):
        super().__init__(request.args, *args, **kwargs)
        self.cohort.choices = [("", "All cohorts")] + [(str(i), label)
                                                       for i, label in finance_reports.cohort_choices()]


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 0


def _query() -> dict[str, str]:
    """The page's filters, kept across a reminder's redirect."""
    args = {k: request.args.get(k, "") for k in ("cohort", "bucket")}
    return {k: v for k, v in args.items() if v}


@bp.get("/balances")
@no_store
def balances_due():
    form = BalancesFilterForm()
    page_no = _page_number()
    if not form.validate() or page_no < 1:
        for f in (form.cohort, form.bucket):
            if f.errors:
                f.errors = ["Choose a value from the list."]
        if page_no < 1:
            form.form_errors.append("The page number is not valid.")
        return render_template("finance/balances.html", form=form, rows=None, cohorts=[], totals={}, page=None,
                               labels=balances.BUCKET_LABELS, buckets=balances.BUCKETS, query={}), 422
    cohort_id = int(form.cohort.data) if form.cohort.data else None
    bucket = form.bucket.data or None
    today = viewer_today()
    rows = balances.outstanding(now=now_utc(), cohort_id=cohort_id)
    cohorts = balances.by_cohort(rows)
    totals = balances.by_currency(rows)
    listed = [r for r in rows if bucket is None or r.buckets[bucket] > 0]
    listed.sort(key=lambda r: (r.oldest_overdue or r.next_due or today, r.participant_name, r.enrollment_id))
    page = Page(items=listed[(page_no - 1) * PER_PAGE: page_no * PER_PAGE], page=page_no, per_page=PER_PAGE,
                total=len(listed))
    return render_template("finance/balances.html", form=form, rows=page.items, cohorts=cohorts, totals=totals,
                           page=page, labels=balances.BUCKET_LABELS, short=balances.BUCKET_SHORT, buckets=balances.BUCKETS, today=today,
                           query=_query())


def _back():
    return redirect(url_for("finance.balances_due", **_query()))


def _flash_result(result: balances.ReminderResult) -> None:
    if result.queued:
        names = ", ".join(r.participant_name for r in result.queued[:5])
        more = f" and {len(result.queued) - 5} more" if len(result.queued) > 5 else ""
        flash(f"Balance reminder queued for {names}{more}.", "success")
    if result.already:
        names = ", ".join(r.participant_name for r in result.already[:5])
        more = f" and {len(result.already) - 5} more" if len(result.already) > 5 else ""
        flash(f"Not sent again: {names}{more} already had a balance reminder today.", "info")


def _remind(remind, *args):
    """Queue reminders with ``remind`` (one of ``balances.remind_*``), say what happened, go back."""
    try:
        result = remind(*args, now=now_utc(), actor=acting_user(), ctx=request_context())
        _flash_result(result)
    except DomainError as exc:
        refused(exc.message, "error")
    return _back()


@bp.post("/balances/enrollments/<int:enr_id>/remind")
def balance_remind(enr_id: int):
    require_object(db.session.get(Enrollment, enr_id) is not None)
    if not FlaskForm().validate_on_submit():
        abort(400)
    return _remind(balances.remind_participant, enr_id)


@bp.post("/balances/cohorts/<int:cohort_id>/<aging>/remind")
def balance_remind_bucket(cohort_id: int, aging: str):
    require_object(db.session.get(Cohort, cohort_id) is not None and aging in balances.BUCKETS)
    if not FlaskForm().validate_on_submit():
        abort(400)
    return _remind(balances.remind_cohort_bucket, cohort_id, aging)
