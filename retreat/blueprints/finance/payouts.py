"""Finance: Stripe payouts, the lines each one settled (linked to enrollment and cohort), and the
payouts CSV. Names and amounts only: nothing clinical."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, stream_with_context, url_for
from flask_wtf import FlaskForm

from retreat import audit
from retreat.blueprints.admin.common import page_arg
from retreat.blueprints.finance import bp
from retreat.blueprints.finance.exports import export_filter
from retreat.blueprints.finance.reports import FinanceFilterForm, IsoDateField, viewer_tz
from retreat.core.errors import DomainError
from retreat.core.pagination import paginate
from retreat.extensions import db
from retreat.finance import exports, payouts
from retreat.finance.payout_models import Payout
from retreat.payments.gateway import GatewayError
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, require_object

PER_PAGE = 50


class SyncForm(FlaskForm):
    since = IsoDateField("Payouts created since (optional)", format="%Y-%m-%d", validators=[], default=None)


def _list_page(form: SyncForm, status: int = 200, error: str = ""):
    page = paginate(payouts.list_statement(), page=page_arg(), per_page=PER_PAGE)
    sums = payouts.totals([p.id for p in page.items])
    rows = [{"payout": p, "totals": sums.get(p.id, payouts.Totals()),
             "difference": payouts.difference(p, sums.get(p.id))} for p in page.items]
    return render_template("finance/payouts.html", page=page, rows=rows, form=form, error=error,
                           filter_form=FinanceFilterForm(), last_auto_sync=payouts.last_automatic_sync(),
                           sync_pending=payouts.sync_pending()), status


@bp.get("/payouts")
@no_store
def payouts_list():
    return _list_page(SyncForm(formdata=None))


@bp.post("/payouts/sync")
def payouts_sync():
    form = SyncForm()
    if not form.validate_on_submit():
        return _list_page(form, 422)
    try:
        report = payouts.sync(now_utc(), since=form.since.data, actor=acting_user(), ctx=request_context())
    except GatewayError as exc:
        return _list_page(form, 502, error=exc.message)
    except DomainError as exc:
        form.since.errors = [exc.message]
        return _list_page(form, exc.status)
    flash(report.summary(), "success" if not report.flagged else "error")
    return redirect(url_for("finance.payouts_list"))


@bp.get("/payouts/<int:payout_id>")
@no_store
def payout_detail(payout_id: int):
    payout = db.session.get(Payout, payout_id)
    require_object(payout is not None)
    t = payouts.totals([payout.id]).get(payout.id, payouts.Totals())
    return render_template("finance/payout_detail.html", payout=payout, lines=payouts.lines_with_people(payout),
                           totals=t, difference=payouts.difference(payout, t))


def _csv_response(flt: payouts.PayoutFilter, filename: str) -> Response:
    response = Response(stream_with_context(payouts.csv_text(flt)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/payouts/<int:payout_id>/lines.csv")
@no_store
def payout_csv(payout_id: int):
    payout = db.session.get(Payout, payout_id)
    require_object(payout is not None)
    flt = payouts.PayoutFilter(tz=viewer_tz(), payout_id=payout.id)
    audit.record("finance.payouts_exported", actor=acting_user(), object_type="payout", object_id=payout.id,
                 ctx=request_context(), now=now_utc(), details={"payout": payout.stripe_payout_id})
    return _csv_response(flt, payouts.csv_filename(flt, payout))


@bp.get("/exports/payouts.csv")
@no_store
def payouts_csv():
    _, rflt = export_filter()
    flt = payouts.PayoutFilter(tz=rflt.tz, start=rflt.start, end=rflt.end, cohort_id=rflt.cohort_id)
    exports.record_export("payouts", rflt, actor=acting_user(), ctx=request_context(), now=now_utc())
    return _csv_response(flt, payouts.csv_filename(flt))
