"""Finance console pages: dashboard, balances due and reminders, reports with charts and filters,
the streamed ledger CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from retreat.models import AuditEvent, OutboxMessage
from retreat.payments import ledger
from retreat.payments.models import LedgerEntry, LedgerType, PaymentKind
from retreat.timeutil import now_utc, to_local
from tests import factories
from tests import finance_helpers as fh
from tests.conftest import signed_in


@pytest.fixture()
def finance(app, db):
    user = factories.user("finance", password=None, tz="America/Denver")
    db.session.commit()
    return signed_in(app, user)


def _today():
    return to_local(now_utc(), "America/Denver").date()


def _text(resp) -> str:
    return resp.get_data(as_text=True)


def test_dashboard_shows_this_months_money_and_overdue_per_currency(db, finance):
    now = now_utc()
    today = _today()
    usd = fh.cohort(starts_at=now + timedelta(days=60), balance_due_on=today - timedelta(days=3))
    jpy = fh.cohort(starts_at=now + timedelta(days=60), balance_due_on=today + timedelta(days=30), currency="JPY",
                    price_minor=300000, deposit_minor=30000)
    a = fh.seated(usd, at=now, deposit_fee=1480)
    fh.entry(a, LedgerType.REFUND, -10000, at=now)
    fh.seated(jpy, at=now)
    fh.seated(usd, at=now - timedelta(days=70))  # an older month: not in "this month"
    db.session.commit()
    page = finance.get("/finance/")
    body = _text(page)
    assert page.status_code == 200
    assert 'data-testid="collected-USD">$500.00' in body and 'data-testid="collected-JPY">¥30,000' in body
    assert 'data-testid="refunds-USD">-$100.00' in body and 'data-testid="fees-USD">-$14.80' in body
    assert 'data-testid="net-USD">$385.20' in body
    # two participants, $4,000 each, 3 days late, plus the refunded $100 that is owed again
    assert 'data-testid="overdue-USD">$8,100.00' in body
    assert 'data-testid="overdue-JPY">¥0' in body and 'data-testid="outstanding-JPY">¥270,000' in body
    for link in ("/finance/balances", "/finance/reports", "/finance/exports", "/finance/payments"):
        assert f'href="{link}"' in body
    nav = body.split("</nav>")[0]
    assert "Balances due" in nav and "Reports" in nav and "Exports" in nav


def test_balances_page_per_cohort_and_per_participant_with_filters(db, finance):
    today = _today()
    c = fh.cohort(starts_at=now_utc() + timedelta(days=90), title="Autumn")
    late = fh.seated(c, plan=[(today - timedelta(days=45), 200000), (today + timedelta(days=3), 200000)], name="Lena")
    fh.seated(c, plan=[(today + timedelta(days=20), 400000)], name="Noah")
    other = fh.cohort(starts_at=now_utc() + timedelta(days=90), balance_due_on=today + timedelta(days=60), title="Winter")
    fh.seated(other, name="Otto")
    db.session.commit()
    body = _text(finance.get("/finance/balances"))
    assert "Lena" in body and "Noah" in body and "Otto" in body and "Autumn" in body
    assert f'data-testid="outstanding-{late.id}">$4,000.00' in body
    assert 'data-testid="total-USD-overdue_31">$2,000.00' in body
    only = _text(finance.get(f"/finance/balances?cohort={c.id}&bucket=overdue_31"))
    assert "Lena" in only and "Noah" not in only and "Otto" not in only
    for bad in ("cohort=999999", "bucket=soon", "cohort=abc", "page=0", "page=x"):
        resp = finance.get(f"/finance/balances?{bad}")
        assert resp.status_code == 422, bad
        assert "Choose a value from the list." in _text(resp) or "page number" in _text(resp)


def test_send_reminder_once_a_day_and_say_so(db, finance):
    today = _today()
    c = fh.cohort(starts_at=now_utc() + timedelta(days=90))
    enr = fh.seated(c, plan=[(today - timedelta(days=2), 400000)], name="Rita")
    fh.seated(c, plan=[(today - timedelta(days=9), 400000)], name="Sam")
    db.session.commit()
    first = finance.post(f"/finance/balances/enrollments/{enr.id}/remind", follow_redirects=True)
    assert first.status_code == 200 and "Balance reminder queued for Rita." in _text(first)
    again = finance.post(f"/finance/balances/enrollments/{enr.id}/remind", follow_redirects=True)
    assert "Not sent again: Rita already had a balance reminder today." in _text(again)
    bucket = finance.post(f"/finance/balances/cohorts/{c.id}/overdue_30/remind?cohort={c.id}")
    assert bucket.status_code == 302 and bucket.headers["Location"].endswith(f"/finance/balances?cohort={c.id}")
    body = _text(finance.get("/finance/balances"))
    assert "Balance reminder queued for Sam." in body and "Rita already had a balance reminder today" in body
    msgs = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "balance_reminder")).all()
    assert sorted(m.recipient_name for m in msgs) == ["Rita", "Sam"]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "finance.balance_reminder", AuditEvent.actor_id == finance.user.id)) == 3
    assert finance.post("/finance/balances/enrollments/999999/remind").status_code == 404
    assert finance.post(f"/finance/balances/cohorts/{c.id}/someday/remind").status_code == 404


def test_balance_reminder_email_renders_with_a_subject(app):
    from flask import render_template

    ctx = {"participant_name": "Pat", "retreat_title": "Mountain", "cohort_title": "Autumn", "balance": "¥270,000",
           "overdue": "¥50,000", "overdue_since": "2026-03-01", "next_due": "2026-03-01",
           "url": "http://x/me/payments/1", "practice_name": "Open Meadow"}
    with app.test_request_context():
        tpl = app.jinja_env.get_template("emails/balance_reminder.txt")
        subject = "".join(tpl.blocks["subject"](tpl.new_context(ctx))).strip()
        assert subject == "Overdue: ¥50,000 for Autumn"
        later = {**ctx, "overdue": "", "overdue_since": ""}
        assert "".join(tpl.blocks["subject"](tpl.new_context(later))).strip() == \
            "Reminder: ¥270,000 still to pay for Autumn"
        body = render_template("emails/balance_reminder.txt", **ctx)
        assert "was due on 2026-03-01" in body and "¥270,000" in body and "http://x/me/payments/1" in body
        assert "¥50,000" in render_template("emails/balance_reminder.html", **ctx)


def _report_data(db):
    c = fh.cohort(title="Spring", price_minor=300000, deposit_minor=50000)
    jpy = fh.cohort(title="Kyoto", currency="JPY", price_minor=300000, deposit_minor=30000)
    jan = fh.NOW.replace(month=1, day=20)
    a = fh.seated(c, at=jan, deposit_fee=1480)
    fh.pay(a, 100000, kind=PaymentKind.INSTALLMENT, at=fh.NOW, fee=2930)
    fh.entry(a, LedgerType.REFUND, -20000, at=fh.NOW)
    fh.seated(jpy, at=fh.NOW)
    db.session.commit()
    return c, jpy


def test_reports_page_with_charts_tables_and_filters(db, finance):
    c, jpy = _report_data(db)
    resp = finance.get("/finance/reports?start=2026-01-01&end=2026-03-31")
    body = _text(resp)
    assert resp.status_code == 200
    assert 'data-testid="collected-USD">$1,500.00' in body and 'data-testid="fees-USD">-$44.10' in body
    assert 'data-testid="net-USD">$1,255.90' in body and 'data-testid="collected-JPY">¥30,000' in body
    assert body.count("<svg") == 6  # money by month, net by month, revenue by cohort; per currency
    assert 'role="img"' in body and "<title id=" in body and "Data table: Money by month (USD)" in body
    assert "<th scope=\"row\">2026-02</th>" in body
    assert 'href="/finance/exports/ledger.csv?start=2026-01-01&amp;end=2026-03-31"' in body
    only = _text(finance.get(f"/finance/reports?start=2026-01-01&end=2026-03-31&cohort={jpy.id}"))
    assert 'data-testid="collected-JPY"' in only and 'data-testid="collected-USD"' not in only
    empty = _text(finance.get("/finance/reports?start=2020-01-01&end=2020-02-01"))
    assert "No ledger entries in this period." in empty
    assert finance.get("/finance/reports").status_code == 200  # the last 12 months by default


def test_the_cohort_chart_shows_the_twelve_that_collected_most_and_the_table_every_cohort(db, finance):
    at = fh.NOW
    cohorts = []
    for i in range(15):
        c = fh.cohort(title=f"Cohort {i:02d}")
        fh.pay(fh.seated(c, at=at), 1000 * (i + 1), kind=PaymentKind.INSTALLMENT, at=at)
        cohorts.append(c)
    db.session.commit()
    body = _text(finance.get("/finance/reports?start=2026-02-01&end=2026-03-31"))
    chart = body[body.index("Revenue by cohort (USD): the 12 that collected most"):]
    chart = chart[:chart.index("</details>")]
    assert "for the 12 of 15 cohorts that collected most" in chart
    shown = {i for i in range(15) if f"Cohort {i:02d}" in chart}
    assert shown == set(range(3, 15))  # the three smallest are left out of the chart
    table = body[body.index("<h3>By cohort</h3>"):]
    assert all(f"Cohort {i:02d}" in table for i in range(15))


@pytest.mark.parametrize(("query", "message"), [
    ("start=2026-03-02&end=2026-03-01", "The end date is before the start date."),
    ("start=31/01/2026", "Enter a date as YYYY-MM-DD"),
    ("end=2026-02-30", "Enter a date as YYYY-MM-DD"),
    ("cohort=999999", "There is no such cohort."),
    ("cohort=x'%20OR%201=1", "Choose a cohort from the list."),
    ("start=2001-01-01&end=2026-01-01", "Choose a range of at most 10 years."),
    ("end=9999-12-31", "Enter a date between 2000 and 2100."),
    ("start=0001-01-01", "Enter a date between 2000 and 2100."),
])
@pytest.mark.parametrize("path", ["/finance/reports", "/finance/exports", "/finance/exports/ledger.csv"])
def test_bad_filters_are_a_form_error_and_a_422(db, finance, path, query, message):
    resp = finance.get(f"{path}?{query}")
    assert resp.status_code == 422
    assert resp.mimetype == "text/html" and message in _text(resp)
    assert 'aria-invalid="true"' in _text(resp)


def test_ledger_csv_is_streamed_and_adds_up_to_the_ledger(db, finance):
    c, jpy = _report_data(db)
    fh.bulk(c, 1200, at=fh.NOW)
    db.session.commit()
    resp = finance.get("/finance/exports/ledger.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.is_streamed and not isinstance(resp.response, list | tuple)  # a generator, not a body
    assert resp.headers["Content-Disposition"] == 'attachment; filename="ledger.csv"'
    assert resp.headers.get("Cache-Control", "").startswith("no-store")
    chunks = list(resp.response)
    assert len(chunks) > 3  # written as it is read, batch by batch
    rows = list(csv.DictReader(io.StringIO("".join(c if isinstance(c, str) else c.decode() for c in chunks))))
    assert len(rows) == db.session.scalar(select(func.count()).select_from(LedgerEntry))
    for cur, exp in (("USD", 2), ("JPY", 0)):
        net = sum(Decimal(r["net"]) for r in rows if r["currency"] == cur)
        fees = sum(Decimal(r["fee"]) for r in rows if r["currency"] == cur)
        assert int(net.scaleb(exp)) == db.session.scalar(
            select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.currency == cur))
        assert int(fees.scaleb(exp)) == (db.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(
            LedgerEntry.currency == cur, LedgerEntry.entry_type == "fee")) or 0)
    assert all(r["currency"] != "JPY" or "." not in r["gross"] for r in rows)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "finance.ledger_exported"))
    assert event.actor_id == finance.user.id


def test_ledger_csv_filters_and_exports_page(db, finance):
    c, jpy = _report_data(db)
    resp = finance.get(f"/finance/exports/ledger.csv?start=2026-03-01&end=2026-03-31&cohort={c.id}")
    assert resp.headers["Content-Disposition"] == \
        f'attachment; filename="ledger-2026-03-01-2026-03-31-cohort-{c.id}.csv"'
    rows = list(csv.DictReader(io.StringIO(_text(resp))))
    assert {r["type"] for r in rows} == {"charge", "fee", "refund"} and {r["cohort"] for r in rows} == {"Spring"}
    assert sum(Decimal(r["net"]) for r in rows) == Decimal("1000.00") - Decimal("29.30") - Decimal("200.00")
    page = _text(finance.get(f"/finance/exports?start=2026-03-01&end=2026-03-31&cohort={c.id}"))
    assert "$770.70" in page and "ledger.csv?start=2026-03-01&amp;end=2026-03-31&amp;cohort=" in page


def test_finance_pages_show_no_clinical_data(db, finance):
    from tests import factories_clearance as fcl

    s = fcl.setup()
    fcl.submit(s, **fcl.marked_answers())
    ledger.record(enrollment_id=s.enrollment.id, entry_type=LedgerType.CHARGE, amount_minor=1000, currency="USD",
                  object_id="pi_clinical_test", now=now_utc())
    db.session.commit()
    for path in ("/finance/", "/finance/balances", "/finance/reports", "/finance/exports",
                 "/finance/exports/ledger.csv", f"/finance/payments/enrollments/{s.enrollment.id}"):
        body = _text(finance.get(path))
        assert fcl.MARKER not in body and "phq" not in body.lower() and "gad" not in body.lower(), path


@pytest.mark.parametrize("role", ["participant", "facilitator", "provider", "admin"])
def test_other_roles_cannot_open_the_finance_console(app, db, role):
    client = signed_in(app, factories.user(role, password=None))
    db.session.commit()
    for path in ("/finance/", "/finance/balances", "/finance/reports", "/finance/exports",
                 "/finance/exports/ledger.csv"):
        assert client.get(path).status_code == 403, (role, path)
    assert client.post("/finance/balances/enrollments/1/remind").status_code == 403
    assert signed_in(app).get("/finance/reports").status_code in (302, 401)


def test_first_of_month_filter_uses_the_viewers_time_zone(db, app):
    tokyo = signed_in(app, factories.user("finance", password=None, tz="Asia/Tokyo"))
    c = fh.cohort()
    enr = fh.seated(c, at=fh.NOW.replace(day=1, hour=16))  # 1 March 16:00 UTC = 2 March 01:00 in Tokyo
    assert enr is not None
    db.session.commit()
    body = _text(tokyo.get("/finance/reports?start=2026-03-02&end=2026-03-02"))
    assert 'data-testid="collected-USD">$500.00' in body
    assert "No ledger entries" in _text(tokyo.get("/finance/reports?start=2026-03-01&end=2026-03-01"))
