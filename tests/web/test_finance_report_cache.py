"""Finance reports are reused while nothing they are computed from has changed: a new ledger entry
or a renamed cohort shows on the very next request."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from retreat.extensions import db as _db
from retreat.finance import reports as finance_reports
from retreat.payments.models import LedgerType
from retreat.timeutil import now_utc, to_local
from tests import factories
from tests import finance_helpers as fh
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


@pytest.fixture()
def cached(app):
    app.config["FINANCE_REPORT_CACHE"] = True
    finance_reports.clear_cache()
    yield
    app.config.pop("FINANCE_REPORT_CACHE")
    finance_reports.clear_cache()


def test_a_new_ledger_entry_or_cohort_title_shows_at_once(app, db, cached):
    now = now_utc()
    today = to_local(now, "America/Denver").date()
    c = fh.cohort(starts_at=now + timedelta(days=40), balance_due_on=today + timedelta(days=5), title="Aspen cohort")
    enr = fh.seated(c, at=now - timedelta(days=1))
    _db.session.commit()
    client = signed_in(app, factories.user("finance", password=None, tz="America/Denver"))
    q = {"start": (today - timedelta(days=30)).isoformat(), "end": today.isoformat()}
    with counting() as computed:
        first = client.get("/finance/reports", query_string=q).get_data(as_text=True)
    assert "Aspen cohort" in first
    with counting() as reused:
        assert "Aspen cohort" in client.get("/finance/reports", query_string=q).get_data(as_text=True)
    assert len(reused) < len(computed)  # the report's aggregates were not run again
    version = finance_reports.data_version()
    fh.entry(enr, LedgerType.REFUND, -12345, at=now - timedelta(hours=2))
    _db.session.commit()
    assert finance_reports.data_version() != version
    after = client.get("/finance/reports", query_string=q).get_data(as_text=True)
    assert "123.45" in after and "123.45" not in first
    c.title = "Boulder cohort"
    c.updated_at = now_utc()
    _db.session.commit()
    assert "Boulder cohort" in client.get("/finance/reports", query_string=q).get_data(as_text=True)


def test_the_kept_page_is_per_filter_and_time_zone_and_bad_input_is_still_refused(app, db, cached):
    now = now_utc()
    c = fh.cohort(starts_at=now + timedelta(days=40), title="Aspen cohort")
    fh.seated(c, at=now - timedelta(days=1))
    _db.session.commit()
    denver = signed_in(app, factories.user("finance", password=None, tz="America/Denver"))
    tokyo = signed_in(app, factories.user("finance", password=None, tz="Asia/Tokyo"))
    q = {"start": "2026-01-01", "end": "2026-12-31", "cohort": str(c.id)}
    first = denver.get("/finance/reports", query_string=q).get_data(as_text=True)
    with counting() as statements:
        again = denver.get("/finance/reports", query_string=q).get_data(as_text=True)
    assert again == first and f'<option selected value="{c.id}">' in first
    assert len(statements) <= 3, statements  # the server session with its user; the two-factor setting; the data version
    assert tokyo.get("/finance/reports", query_string=q).get_data(as_text=True) != first  # other dates
    app.config["FINANCE_REPORT_CACHE"] = False

    def same(html):  # charts are numbered per rendering, and the sign-out form's token is signed with the time
        html = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token"', html)  # signed with the time
        return re.sub(r'(chart-[a-z-]+)-\d+', r'\1', html)

    assert same(denver.get("/finance/reports", query_string=q).get_data(as_text=True)) == same(first)
    app.config["FINANCE_REPORT_CACHE"] = True
    for _ in range(2):
        bad = denver.get("/finance/reports", query_string={"start": "31/12/2026"})
        assert bad.status_code == 422 and "Enter a date as YYYY-MM-DD" in bad.get_data(as_text=True)
