"""The finance dashboard: this month's money, overdue balances, links to the finance pages."""

from flask import render_template

from retreat.blueprints.finance import bp
from retreat.blueprints.finance.reports import viewer_today, viewer_tz
from retreat.finance import reports as finance_reports
from retreat.payments import balances
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store


@bp.get("/")
@no_store
def dashboard():
    today = viewer_today()
    month = finance_reports.make_filter(tz=viewer_tz(), start=today.replace(day=1), end=today)
    return render_template("finance/dashboard.html", month=month, figures=finance_reports.cached_totals(month),
                           owed=balances.by_currency(balances.outstanding(now=now_utc())), today=today)
