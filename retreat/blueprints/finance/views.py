"""The finance home: what needs finance today (failed payments nobody recovered, overdue balances,
unreconciled items), this month's money, balances due, links to the finance pages."""

from flask import render_template

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import viewer_today, viewer_tz
from retreat.finance import reconciliation_report
from retreat.finance import reports as finance_reports
from retreat.payments import attempts, autopay_charges, balances
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store


@bp.get("/")
@no_store
def dashboard():
    today = viewer_today()
    month = finance_reports.make_filter(tz=viewer_tz(), start=today.replace(day=1), end=today)
    now = now_utc()
    rows = balances.outstanding(now=now)
    run, unreconciled = reconciliation_report.open_items_of_last_run()
    return render_template("finance/dashboard.html", month=month, figures=finance_reports.cached_totals(month),
                           owed=balances.by_currency(rows), today=today,
                           failed=attempts.failed_unrecovered(now), overdue=balances.most_overdue(rows),
                           run=run, unreconciled=unreconciled, autopay=autopay_charges.exhausted())
