"""Finance services: balances due and aging, reminders, reports by month and cohort, the ledger
CSV, and the SVG chart helper."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from retreat.cohorts.models import EnrollmentStatus
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db as _db
from retreat.finance import exports
from retreat.finance import reports as finance_reports
from retreat.models import AuditEvent, OutboxMessage, User
from retreat.payments import balances, pricing
from retreat.payments import checkout as payments
from retreat.payments.models import LedgerEntry, LedgerType, PaymentKind, PriceOverride
from retreat.web.charts import Series, bar_chart, line_chart
from tests import factories
from tests import finance_helpers as fh
from tests.conftest import is_postgres

TODAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # 11:00 in Denver, where the cohorts are: TODAY there too


# --------------------------------------------------------------------------------------------
# Balances due
# --------------------------------------------------------------------------------------------


def test_aging_bucket_boundaries():
    b = balances.bucket_for
    assert b(TODAY + timedelta(days=8), TODAY) == "not_due"
    assert b(TODAY + timedelta(days=7), TODAY) == "due_7"
    assert b(TODAY, TODAY) == "due_7"
    assert b(TODAY - timedelta(days=1), TODAY) == "overdue_30"
    assert b(TODAY - timedelta(days=30), TODAY) == "overdue_30"
    assert b(TODAY - timedelta(days=31), TODAY) == "overdue_31"


def _scenarios(db):
    c = fh.cohort(price_minor=300000, deposit_minor=60000, title="Autumn")
    plan3 = [(TODAY - timedelta(days=40), 80000), (TODAY - timedelta(days=5), 80000), (TODAY + timedelta(days=3), 80000)]
    a = fh.seated(c, plan=plan3, name="Ann")  # owes 240000: 80000 > 30 days late, 80000 late, 80000 due soon
    b = fh.seated(c, plan=plan3, name="Ben")
    fh.pay(b, 100000)  # covers the first installment and 20000 of the second
    d = fh.seated(c, plan=[(TODAY + timedelta(days=20), 240000)], name="Dee")
    fh.entry(d, LedgerType.DISCOUNT, -30000)  # a discount after the plan: the plan now asks too much
    e = fh.seated(c, name="Eve")  # the default plan: due on the cohort's balance date
    fh.pay(e, 240000)  # paid in full: owes nothing
    f = fh.seated(c, plan=plan3, name="Fay")
    f.status = EnrollmentStatus.WITHDRAWN.value  # closed: not a balance due
    g = fh.seated(c, plan=[], name="Gus")  # no plan at all: due on the cohort's balance date
    db.session.add(PriceOverride(enrollment_id=g.id, price_minor=200000, currency="USD", reason="Scholarship"))
    jpy = fh.cohort(price_minor=300000, deposit_minor=50000, currency="JPY", title="Kyoto")
    h = fh.seated(jpy, plan=[(TODAY - timedelta(days=2), 250000)], name="Hana")
    fh.entry(h, LedgerType.REFUND, -10000)  # a partial refund of the deposit
    db.session.flush()
    return c, jpy, {"a": a, "b": b, "d": d, "e": e, "f": f, "g": g, "h": h}


def test_balances_agree_with_the_participants_quote_and_installments(db):
    c, jpy, people = _scenarios(db)
    rows = {r.enrollment_id: r for r in balances.outstanding(now=NOW)}
    assert set(rows) == {people[k].id for k in "abdgh"}  # paid in full and withdrawn are not listed
    for enr_id, row in rows.items():
        enr = db.session.get(type(people["a"]), enr_id)
        q = pricing.quote(enr)
        assert row.quote == q  # the same total, deposit, discount and paid as the participant's page
        assert row.outstanding == q.balance == sum(p.amount for p in row.parts) == sum(row.buckets.values())
        progress = payments.installment_progress(enr, q)
        if sum(r["remaining"] for r in progress) <= q.balance:  # the plan does not ask for more than is owed
            assert [p.amount for p in row.parts if p.seq] == [r["remaining"] for r in progress if r["remaining"]]
    a, b = rows[people["a"].id], rows[people["b"].id]
    assert a.buckets == {"overdue_31": 80000, "overdue_30": 80000, "due_7": 80000, "not_due": 0}
    assert b.buckets == {"overdue_31": 0, "overdue_30": 60000, "due_7": 80000, "not_due": 0}
    assert b.oldest_overdue == TODAY - timedelta(days=5) and b.next_due == TODAY - timedelta(days=5)
    assert rows[people["d"].id].buckets["not_due"] == 210000  # capped at what is owed after the discount
    g = rows[people["g"].id]
    assert g.outstanding == 140000 and g.parts[0].due_on == c.balance_due_on and g.parts[0].seq is None
    h = rows[people["h"].id]
    assert (h.currency, h.outstanding, h.buckets["overdue_30"]) == ("JPY", 260000, 250000)
    assert h.buckets["due_7"] == 0 and h.parts[-1].amount == 10000  # the refunded part is due again


def test_overdue_amounts_agree_with_the_installments_left_unpaid(db):
    _, _, people = _scenarios(db)
    overdue = balances.overdue(now=NOW)
    assert [r.enrollment_id for r in overdue] == sorted(people[k].id for k in "abh")
    for row in overdue:
        enr = db.session.get(type(people["a"]), row.enrollment_id)
        late = [r for r in payments.installment_progress(enr) if r["remaining"] and r["installment"].due_on < TODAY]
        assert row.overdue == sum(r["remaining"] for r in late)
        assert row.oldest_overdue == min(r["installment"].due_on for r in late)


def test_the_balance_is_overdue_from_the_day_after_its_due_date_in_the_cohorts_time_zone(db):
    due = date(2026, 3, 10)
    c = fh.cohort(timezone="America/Denver", balance_due_on=due)
    enr = fh.seated(c, plan=[])  # no plan: the balance is due on the cohort's balance date
    evening = datetime(2026, 3, 11, 5, 30, tzinfo=UTC)  # 23:30 MDT on the due date, already the 11th in UTC
    assert balances.balance_due_on(c) == due
    (row,) = balances.outstanding(now=evening, enrollment_id=enr.id)
    assert row.today == due and row.overdue == 0 and row.buckets["due_7"] == row.outstanding > 0
    assert balances.overdue(now=evening) == []
    (late,) = balances.overdue(now=evening + timedelta(hours=1))  # 00:30 on the 11th in Denver
    assert late.enrollment_id == enr.id and late.oldest_overdue == due


def test_without_a_balance_date_the_balance_is_due_two_weeks_before_the_first_local_day(db):
    # 19:00 on 1 June in Denver is 01:00 on 2 June in UTC: the cohort starts on the 1st
    c = fh.cohort(timezone="America/Denver", starts_at=datetime(2026, 6, 2, 1, 0, tzinfo=UTC), balance_due_on=None)
    assert balances.balance_due_on(c) == date(2026, 5, 18)


def test_totals_per_cohort_and_per_currency_never_mix_currencies(db):
    c, jpy, people = _scenarios(db)
    rows = balances.outstanding(now=NOW)
    per_cur = balances.by_currency(rows)
    assert list(per_cur) == ["JPY", "USD"]
    assert per_cur["JPY"]["total"] == 260000 and per_cur["JPY"]["overdue"] == 250000
    assert per_cur["USD"]["total"] == 240000 + 140000 + 210000 + 140000
    assert per_cur["USD"]["overdue"] == 160000 + 60000
    cohorts = {x.cohort_id: x for x in balances.by_cohort(rows)}
    assert cohorts[c.id].participants == 4 and cohorts[c.id].participants_in["overdue_31"] == 1
    assert cohorts[jpy.id].currency == "JPY" and cohorts[jpy.id].total == 260000
    assert balances.outstanding(now=NOW, cohort_id=jpy.id)[0].enrollment_id == people["h"].id


def test_reminders_are_queued_once_a_day_and_audited(db, app):
    c, _, people = _scenarios(db)
    finance = factories.user("finance", password=None)
    now = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    first = balances.remind_participant(people["a"].id, now=now, actor=finance)
    again = balances.remind_participant(people["a"].id, now=now, actor=finance)
    assert [r.enrollment_id for r in first.queued] == [people["a"].id] and not first.already
    assert not again.queued and [r.enrollment_id for r in again.already] == [people["a"].id]
    msgs = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "balance_reminder")).all()
    assert len(msgs) == 1 and msgs[0].recipient_email == people["a"].participant.email
    assert msgs[0].context["overdue"] == "$1,600.00" and msgs[0].context["balance"] == "$2,400.00"
    # the cohort's "1-30 days overdue" bucket: Ann was reminded today already, Ben gets one
    bucket = balances.remind_cohort_bucket(c.id, "overdue_30", now=now, actor=finance)
    assert [r.participant_name for r in bucket.queued] == ["Ben"]
    assert [r.participant_name for r in bucket.already] == ["Ann"]
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template == "balance_reminder")) == 2
    # the next day is a new reminder
    tomorrow = balances.remind_participant(people["a"].id, now=now + timedelta(days=1), actor=finance)
    assert len(tomorrow.queued) == 1
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "finance.balance_reminder")).all()
    assert len(events) == 4 and all(e.actor_id == finance.id for e in events)
    assert events[2].object_type == "cohort" and events[2].details == {"bucket": "overdue_30", "queued": 1,
                                                                       "already_today": 1}


def test_reminder_refusals_change_nothing(db):
    c, jpy, people = _scenarios(db)
    finance = factories.user("finance", password=None)
    now = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    with pytest.raises(Conflict, match="owes nothing"):
        balances.remind_participant(people["e"].id, now=now, actor=finance)
    with pytest.raises(Conflict):
        balances.remind_cohort_bucket(jpy.id, "due_7", now=now, actor=finance)  # nobody there
    with pytest.raises(ValidationFailed):
        balances.remind_cohort_bucket(c.id, "later", now=now, actor=finance)
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template == "balance_reminder")) == 0


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _money_in_three_months(db):
    """USD: deposits, a balance, a refund, fees, a discount; JPY: one deposit. Denver time."""
    c = fh.cohort(price_minor=300000, deposit_minor=50000, title="Spring")
    other = fh.cohort(price_minor=300000, deposit_minor=50000, title="Summer")
    jpy = fh.cohort(price_minor=300000, deposit_minor=30000, currency="JPY", title="Kyoto")
    jan = datetime(2026, 1, 15, 18, 0, tzinfo=UTC)
    feb_end = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # 28 Feb, 22:00 in Denver
    mar = datetime(2026, 3, 9, 18, 0, tzinfo=UTC)
    a = fh.seated(c, at=jan, deposit_fee=1480)
    fh.pay(a, 100000, kind=PaymentKind.INSTALLMENT, at=feb_end, fee=2930)
    fh.entry(a, LedgerType.REFUND, -20000, at=mar)
    fh.entry(a, LedgerType.DISCOUNT, -15000, at=mar)
    b = fh.seated(other, at=mar, deposit_fee=1480)
    fh.entry(b, LedgerType.DISPUTE, -50000, at=mar)
    fh.seated(jpy, at=feb_end)
    db.session.flush()
    return c, other, jpy


def test_report_by_month_and_cohort_in_the_viewers_time_zone(db):
    c, other, jpy = _money_in_three_months(db)
    flt = finance_reports.make_filter(tz="America/Denver", start=date(2026, 1, 1), end=date(2026, 3, 31))
    rep = finance_reports.report(flt)
    assert rep.currencies == ["JPY", "USD"] and rep.month_labels == ["2026-01", "2026-02", "2026-03"]
    usd = rep.totals["USD"]
    assert (usd.get("deposits"), usd.get("balances"), usd.get("refunds"), usd.get("disputes"), usd.get("fees")) == (
        100000, 100000, -20000, -50000, -1480 * 2 - 2930)
    assert usd.collected == 200000 and usd.net == 200000 - 20000 - 50000 - 5890
    assert usd.get("discounts") == -15000  # reported apart: a price change, not money
    assert rep.totals["JPY"].collected == 30000 and rep.totals["JPY"].net == 30000
    months = rep.by_month["USD"]
    assert months["2026-01"].collected == 50000
    assert months["2026-02"].get("balances") == 100000  # 05:00 UTC on 1 March is still February in Denver
    assert months["2026-03"].collected == 50000 and months["2026-03"].get("refunds") == -20000
    assert rep.by_month["JPY"]["2026-02"].collected == 30000
    cohorts = {(x.cohort_id, x.currency): x.figures for x in rep.by_cohort}
    assert cohorts[(c.id, "USD")].net == 150000 - 20000 - 1480 - 2930
    assert cohorts[(other.id, "USD")].net == 50000 - 50000 - 1480
    # the same instant in UTC is March
    utc = finance_reports.report(finance_reports.make_filter(tz="UTC", start=date(2026, 1, 1), end=date(2026, 3, 31)))
    assert utc.by_month["USD"]["2026-03"].get("balances") == 100000


def test_report_filters_by_date_range_and_cohort(db):
    c, other, jpy = _money_in_three_months(db)
    march = finance_reports.make_filter(tz="America/Denver", start=date(2026, 3, 1), end=date(2026, 3, 9))
    t = finance_reports.totals(march)
    assert set(t) == {"USD"} and t["USD"].collected == 50000 and t["USD"].get("refunds") == -20000
    day_before = finance_reports.make_filter(tz="America/Denver", start=date(2026, 3, 1), end=date(2026, 3, 8))
    assert finance_reports.totals(day_before) == {}  # 9 March 11:00 in Denver is outside
    only = finance_reports.make_filter(tz="America/Denver", cohort_id=str(other.id))
    t = finance_reports.totals(only)
    assert only.cohort_title == "Summer" and t["USD"].collected == 50000 and t["USD"].get("disputes") == -50000
    # a default range ends today and starts on the first of the month 11 months before
    dflt = finance_reports.make_filter(tz="America/Denver", today=date(2026, 3, 20), default_months=12)
    assert (dflt.start, dflt.end) == (date(2025, 4, 1), date(2026, 3, 20))
    # DST: the March month starts at 07:00 UTC, April at 06:00 UTC in Denver
    assert march.utc_bounds()[0] == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    april = finance_reports.make_filter(tz="America/Denver", start=date(2026, 4, 1), end=date(2026, 4, 30))
    assert april.utc_bounds() == (datetime(2026, 4, 1, 6, 0, tzinfo=UTC), datetime(2026, 5, 1, 6, 0, tzinfo=UTC))


@pytest.mark.parametrize(("kw", "field", "message"), [
    ({"start": date(2026, 3, 2), "end": date(2026, 3, 1)}, "end", "before the start"),
    ({"cohort_id": "999999"}, "cohort", "no such cohort"),
    ({"cohort_id": "abc"}, "cohort", "Choose a cohort"),
    ({"start": date(2000, 1, 1), "end": date(2026, 1, 1)}, "start", "at most 10 years"),
    ({"end": date(9999, 12, 31)}, "end", "between 2000 and 2100"),
    ({"start": date(1, 1, 1)}, "start", "between 2000 and 2100"),
])
def test_bad_filters_are_refused_with_the_field(db, kw, field, message):
    with pytest.raises(ValidationFailed) as exc:
        finance_reports.make_filter(tz="UTC", **kw)
    assert exc.value.field == field and message in exc.value.message


# --------------------------------------------------------------------------------------------
# The ledger CSV
# --------------------------------------------------------------------------------------------


def test_decimal_strings_per_currency():
    assert exports.decimal_string(125050, "USD") == "1250.50"
    assert exports.decimal_string(-1480, "usd") == "-14.80"
    assert exports.decimal_string(5000, "JPY") == "5000"
    assert exports.decimal_string(-7, "JPY") == "-7"
    assert exports.decimal_string(1234, "KWD") == "1.234"
    assert exports.decimal_string(0, "EUR") == "0.00"


def test_ledger_csv_rows_add_up_to_the_ledger_per_currency(db):
    c, other, jpy = _money_in_three_months(db)
    flt = finance_reports.make_filter(tz="America/Denver")
    text = "".join(exports.ledger_csv(flt))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(exports.COLUMNS)
    assert len(rows) == db.session.scalar(select(func.count()).select_from(LedgerEntry))
    for cur in ("USD", "JPY"):
        expected = db.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.currency == cur))
        exp = 0 if cur == "JPY" else 2
        net = sum(Decimal(r["net"]) for r in rows if r["currency"] == cur)
        assert int(net.scaleb(exp)) == expected
        assert all(Decimal(r["gross"]) + Decimal(r["fee"]) == Decimal(r["net"]) for r in rows)
    jpy_rows = [r for r in rows if r["currency"] == "JPY"]
    assert jpy_rows[0]["gross"] == "30000" and "." not in jpy_rows[0]["net"]
    fee = next(r for r in rows if r["type"] == "fee")
    assert (fee["gross"], fee["fee"], fee["net"]) == ("0.00", "-14.80", "-14.80")
    balance = next(r for r in rows if r["payment_kind"] == "installment" and r["type"] == "charge")
    assert balance["date"] == "2026-02-28" and balance["time_utc"] == "2026-03-01T05:00:00Z"
    assert balance["stripe_payment_intent_id"].startswith("pi_test_") and balance["payout_id"] == ""
    assert balance["cohort"] == "Spring" and balance["participant"]
    only_jpy = list(csv.DictReader(io.StringIO("".join(exports.ledger_csv(
        finance_reports.make_filter(tz="UTC", cohort_id=jpy.id))))))
    assert {r["currency"] for r in only_jpy} == {"JPY"} and len(only_jpy) == 1
    march = list(csv.DictReader(io.StringIO("".join(exports.ledger_csv(
        finance_reports.make_filter(tz="America/Denver", start=date(2026, 3, 1), end=date(2026, 3, 31)))))))
    assert {r["date"][:7] for r in march} == {"2026-03"} and len(march) == 5


def test_csv_cells_cannot_start_a_formula(db):
    c = fh.cohort()
    fh.seated(c, name="=HYPERLINK(\"http://x\")")
    rows = list(csv.reader(io.StringIO("".join(exports.ledger_csv(finance_reports.make_filter(tz="UTC"))))))
    assert rows[1][exports.COLUMNS.index("participant")].startswith("'=")


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def test_stacked_bar_chart_puts_negatives_below_the_zero_line():
    chart = bar_chart("Money", ["Jan", "Feb"], [Series("In", [100, 50]), Series("Out", [-40, 0])], stacked=True)
    inflow, outflow = chart.bars[0], chart.bars[1]
    assert inflow.y + inflow.height == pytest.approx(chart.zero_y)  # sits on zero
    assert outflow.y == pytest.approx(chart.zero_y) and outflow.height > 0  # hangs below
    assert inflow.height == pytest.approx(outflow.height * 100 / 40, rel=0.01)
    assert chart.table_rows == [["Jan", "100", "-40"], ["Feb", "50", "0"]]
    assert [b.label for b in chart.bars][:2] == ["In, Jan: 100", "Out, Jan: -40"]


def test_grouped_bars_and_line_chart_geometry():
    grouped = bar_chart("Cohorts", ["A", "B"], [Series("x", [10, 20]), Series("y", [5, 0])])
    assert len(grouped.bars) == 4 and grouped.bars[0].x < grouped.bars[1].x < grouped.bars[2].x
    assert grouped.bars[2].height == pytest.approx(grouped.bars[0].height * 2)
    line = line_chart("Net", ["1", "2", "3"], [Series("Net", [0, 10, -10])], fmt=lambda v: f"${v:.0f}")
    ys = [float(p.split(",")[1]) for p in line.lines[0].points.split()]
    assert ys[1] < ys[0] < ys[2] and ys[0] == pytest.approx(line.zero_y)
    assert line.y_ticks[0][1].startswith("$-") and line.lines[0].dots[1][2] == "Net, 2: $10"
    with pytest.raises(ValueError):
        bar_chart("Bad", ["A"], [Series("x", [1, 2])])
    assert bar_chart("Empty", [], [Series("x", [])]).is_empty


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_two_reminder_clicks_at_once_queue_one_message(committing_app):
    app = committing_app
    with app.app_context():
        c = fh.cohort()
        enr = fh.seated(c, plan=[(TODAY - timedelta(days=3), 400000)], name="Tess")
        people = [factories.user("finance", password=None).id for _ in range(2)]
        enr_id = enr.id
        _db.session.commit()
    barrier = threading.Barrier(2)
    results: dict[int, balances.ReminderResult] = {}

    def click(user_id):
        with app.app_context():
            try:
                actor = _db.session.get(User, user_id)
                barrier.wait()
                results[user_id] = balances.remind_participant(enr_id, now=fh.NOW, actor=actor)
                _db.session.commit()
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=click, args=(uid,)) for uid in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted((len(r.queued), len(r.already)) for r in results.values()) == [(0, 1), (1, 0)]
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == "balance_reminder")) == 1


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_a_cached_report_follows_an_entry_that_commits_after_a_later_one(committing_app):
    """Entry A gets its id first but commits last: the report computed between the two commits
    must not be served after A commits (keyed by the highest id, it was, for up to 30 s). Stripe
    fee entries: refunds and charges now take a gapless document number, which serialises them
    (retreat.payments.documents), so only entries without a document can commit out of order."""
    app = committing_app
    app.config["FINANCE_REPORT_CACHE"] = True
    finance_reports.clear_cache()
    with app.app_context():
        enr = fh.seated(fh.cohort(), at=fh.NOW)
        enr_id = enr.id
        _db.session.commit()
        flt = finance_reports.make_filter(tz="UTC", start=(fh.NOW - timedelta(days=5)).date(),
                                          end=(fh.NOW + timedelta(days=5)).date(), today=fh.NOW.date())
        _db.session.remove()
    flushed, release = threading.Event(), threading.Event()

    def slow_refund():
        from retreat.models import Enrollment

        with app.app_context():
            try:
                fh.entry(_db.session.get(Enrollment, enr_id), LedgerType.FEE, -111, at=fh.NOW)
                _db.session.flush()  # its id is taken now
                flushed.set()
                release.wait(30)
                _db.session.commit()
            finally:
                _db.session.remove()

    t = threading.Thread(target=slow_refund)
    t.start()
    try:
        assert flushed.wait(30)
        with app.app_context():
            from retreat.models import Enrollment

            fh.entry(_db.session.get(Enrollment, enr_id), LedgerType.FEE, -222, at=fh.NOW)
            _db.session.commit()
            assert finance_reports.cached_report(flt).totals["USD"].get("fees") == -222
            _db.session.remove()
    finally:
        release.set()
        t.join(30)
    try:
        with app.app_context():
            assert finance_reports.cached_report(flt).totals["USD"].get("fees") == -333
            _db.session.remove()
    finally:
        app.config.pop("FINANCE_REPORT_CACHE")
        finance_reports.clear_cache()
