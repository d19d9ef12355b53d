"""Finance reports with charts: revenue by cohort and by month, deposits vs balances, refunds,
Stripe fees and net, filtered by a date range (the viewer's time zone) and a cohort."""

from __future__ import annotations

from datetime import date

from flask import render_template, request
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import SelectField

from retreat.blueprints.finance import bp
from retreat.core.errors import ValidationFailed
from retreat.finance import reports as finance_reports
from retreat.finance.reports import CATEGORY_LABELS, Report, ReportFilter
from retreat.money import format_money
from retreat.timeutil import now_utc, to_local
from retreat.web import page_cache
from retreat.web.charts import Series, bar_chart, line_chart
from retreat.web.forms import DateField
from retreat.web.hooks import no_store
from retreat.web.security import acting_user


class IsoDateField(DateField):
    """A YYYY-MM-DD date; left empty it is no date (the filters' "leave empty" means no bound)."""

    def process_formdata(self, valuelist):
        if not valuelist or not "".join(valuelist).strip():
            self.data = None
            return
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError("Enter a date as YYYY-MM-DD, e.g. 2026-03-31.") from exc


class FinanceFilterForm(FlaskForm):
    """GET filters of the finance pages (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    start = IsoDateField("From", format="%Y-%m-%d", validators=[], default=None)
    end = IsoDateField("To", format="%Y-%m-%d", validators=[], default=None)
    cohort = SelectField("Cohort", choices=[], validate_choice=False, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(request.args, *args, **kwargs)
        self.cohort.choices = [("", "All cohorts")] + [(str(i), label)
                                                       for i, label in finance_reports.cohort_choices()]


def viewer_tz() -> str:
    user = acting_user()
    return (user.tz if user is not None else None) or "UTC"


def viewer_today() -> date:
    return to_local(now_utc(), viewer_tz()).date()


def read_filter(form: FinanceFilterForm, *, default_months: int | None = None) -> ReportFilter | None:
    """The filter of a validated form, or None with the errors set on the form's fields."""
    if not form.validate():
        return None
    try:
        return finance_reports.make_filter(tz=viewer_tz(), start=form.start.data, end=form.end.data,
                                           cohort_id=form.cohort.data, today=viewer_today(),
                                           default_months=default_months)
    except ValidationFailed as exc:
        getattr(form, exc.field or "start").errors = [exc.message]
        return None


def _money_fmt(currency: str):
    return lambda v: format_money(int(round(v)), currency)


# One colour per figure in every chart (classes series-0 .. series-5 in app.css).
CATEGORY_CSS = {"deposits": "series-0", "balances": "series-1", "refunds": "series-2", "fees": "series-3",
                "other": "series-4", "screening_fees": "series-5", "disputes": "series-5", "collected": "series-0", "net": "series-4"}


def _series(name: str, values: list[int]) -> Series:
    return Series(CATEGORY_LABELS[name], values, css=CATEGORY_CSS[name])


CHART_COHORTS = 12


def report_charts(rep: Report) -> dict[str, list]:
    """Per currency: money by month (stacked), net by month (line), revenue by cohort (grouped)."""
    out = {}
    labels = rep.month_labels
    for cur in rep.currencies:
        months = rep.by_month.get(cur, {})
        fmt = _money_fmt(cur)

        def col(name, months=months):
            return [months[m].get(name) if m in months else 0 for m in labels]

        names = ["deposits", "balances", "refunds", "disputes", "fees"]
        if any(col("other")):
            names.insert(2, "other")
        if any(col("screening_fees")):
            names.insert(2, "screening_fees")
        series = [_series(n, col(n)) for n in names if n in ("deposits", "balances") or any(col(n))]
        charts = [
            bar_chart(f"Money by month ({cur})", labels, series, stacked=True, fmt=fmt,
                      desc=f"Deposits and balances collected per month, with refunds and fees below zero, in {cur}"),
            line_chart(f"Net by month ({cur})", labels, [_series("net", col("net"))], fmt=fmt,
                       desc=f"Money collected minus refunds, disputes and Stripe fees per month, in {cur}"),
        ]
        cohorts = [c for c in rep.by_cohort if c.currency == cur]
        if cohorts:
            # A bar group per cohort stays readable up to a dozen: the chart shows the cohorts that
            # collected most, in date order; the table below the charts lists every cohort.
            shown = cohorts
            title, desc = f"Revenue by cohort ({cur})", f"Collected, refunds, Stripe fees and net per cohort, in {cur}"
            if len(cohorts) > CHART_COHORTS:
                top = sorted(cohorts, key=lambda c: c.figures.get("collected"), reverse=True)[:CHART_COHORTS]
                keep = {id(c) for c in top}
                shown = [c for c in cohorts if id(c) in keep]
                title = f"Revenue by cohort ({cur}): the {CHART_COHORTS} that collected most"
                desc += f", for the {CHART_COHORTS} of {len(cohorts)} cohorts that collected most (all are in the By cohort table)"
            charts.append(bar_chart(
                title, [c.title for c in shown],
                [_series(n, [c.figures.get(n) for c in shown]) for n in ("collected", "refunds", "fees", "net")],
                fmt=fmt, desc=desc))
        out[cur] = charts
    return out


SUMMARY_ROWS = ("deposits", "balances", "screening_fees", "other", "collected", "refunds", "disputes", "fees", "net", "discounts")


@bp.get("/reports")
@no_store
def reports():
    # The whole section below the navigation depends only on the filter, the viewer's time zone and
    # date, and the ledger and cohorts: cached with the reports (finance_reports.cached_fragment).
    # The whole page is kept for this session too while nothing changed (page_cache.signed_in_page).
    key = ("reports", request.query_string, viewer_tz(), viewer_today())
    ttl = finance_reports.CACHE_SECONDS if finance_reports.cache_enabled() else 0

    def render():
        content, status = finance_reports.cached_fragment(key, _reports_content)
        return render_template("finance/reports.html", content=content), status, True

    return page_cache.signed_in_page(key, finance_reports.data_version() if ttl else None, ttl, render)


def _reports_content() -> tuple[Markup, int]:
    form = FinanceFilterForm()
    flt = read_filter(form, default_months=finance_reports.DEFAULT_MONTHS)
    if flt is None:
        return Markup(render_template("finance/_reports_content.html", form=form, rep=None)), 422
    rep = finance_reports.cached_report(flt)
    body = rep.extras.get("body")
    if body is None:  # rendered once per cached report (it depends on the filter and the data only)
        body = rep.extras["body"] = Markup(render_template(
            "finance/_report_body.html", rep=rep, charts=report_charts(rep), summary_rows=SUMMARY_ROWS,
            labels=CATEGORY_LABELS))
    return Markup(render_template("finance/_reports_content.html", form=form, rep=rep, report_body=body)), 200
