"""Accounting exports: the ledger as a streamed CSV, with the reports' date and cohort filters."""

from __future__ import annotations

from flask import Response, abort, make_response, render_template, stream_with_context

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import FinanceFilterForm, read_filter
from retreat.finance import exports
from retreat.finance import reports as finance_reports
from retreat.finance.reports import ReportFilter
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


def export_filter() -> tuple[FinanceFilterForm, ReportFilter]:
    """The exports form and its filter; an invalid one ends the request: the page with the
    form's errors, 422."""
    form = FinanceFilterForm()
    flt = read_filter(form)
    if flt is None:
        abort(make_response(render_template("finance/exports.html", form=form, flt=None, totals={}), 422))
    return form, flt


@bp.get("/exports")
@no_store
def exports_page():
    form, flt = export_filter()
    return render_template("finance/exports.html", form=form, flt=flt, totals=finance_reports.cached_totals(flt),
                           columns=exports.COLUMNS)


@bp.get("/exports/ledger.csv")
@no_store
def ledger_csv():
    _, flt = export_filter()
    exports.record_export("ledger", flt, actor=acting_user(), ctx=request_context(), now=now_utc())
    response = Response(stream_with_context(exports.ledger_csv(flt)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.ledger_filename(flt)}"'
    return response
