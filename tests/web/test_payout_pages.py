"""Finance payouts pages: fetch from Stripe (audited), list with flagged mismatches, detail with
participants and cohorts (no clinical data), CSV downloads; other roles refused; bad input 4xx."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from retreat.finance.payout_models import Payout
from retreat.models import AuditEvent
from tests import factories
from tests import payout_helpers as poh

pytestmark = pytest.mark.usefixtures("proxy_app")


def _sync(finance, **data):
    return finance.post("/finance/payouts/sync", data=data)


def test_finance_fetches_payouts_and_sees_lines_with_participants(db, client, stripe_proxy, make_client):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, name="Ada Payout")
    po = stripe_proxy.create_payout(sc.txns)
    finance = make_client("finance")
    r = _sync(finance)
    assert r.status_code == 302
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "finance.payouts_synced")
                           .order_by(AuditEvent.id.desc()))
    assert ev.actor_id == finance.user.id and ev.ip is not None
    page = finance.get("/finance/payouts").get_data(as_text=True)
    assert po["id"] in page and "Fetch payouts from Stripe" in page
    assert 'href="/finance/payouts"' in page  # in the finance navigation
    payout = db.session.scalar(select(Payout).where(Payout.stripe_payout_id == po["id"]))
    detail = finance.get(f"/finance/payouts/{payout.id}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert "Ada Payout" in text and sc.enrollment.cohort.title in text
    assert "Yes: the lines" in text and all(t in text for t in sc.txns)
    lowered = text.lower()
    assert not any(w in lowered for w in ("intake", "phq", "gad-7", "contraindication", "medication"))
    r = finance.get(f"/finance/payouts/{payout.id}/lines.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {row["participant"] for row in rows} == {"Ada Payout"} and len(rows) == 4
    assert sum(int(row["net"].replace(".", "")) for row in rows) == payout.amount_minor
    r = finance.get("/finance/exports/payouts.csv", query_string={"cohort": sc.enrollment.cohort_id})
    assert r.status_code == 200 and len(list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))) == 4


def test_a_payout_that_does_not_add_up_is_flagged_in_the_list_and_detail(db, client, stripe_proxy, make_client):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, refund=0, dispute=False)
    net = sum(stripe_proxy.balance_transaction(t)["net"] for t in sc.txns)
    po = stripe_proxy.create_payout(sc.txns, amount=net - 500)
    finance = make_client("finance")
    _sync(finance)
    page = finance.get("/finance/payouts").get_data(as_text=True)
    assert "Does not add up: difference $5.00" in page
    payout = db.session.scalar(select(Payout).where(Payout.stripe_payout_id == po["id"]))
    assert "differs from the amount by $5.00" in finance.get(f"/finance/payouts/{payout.id}").get_data(as_text=True)


def test_bad_input_is_refused_and_changes_nothing(db, client, make_client):
    finance = make_client("finance")
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    for since in ("2026-13-01", "yesterday", "1990-01-01"):
        r = _sync(finance, since=since)
        assert r.status_code == 422, since
        assert "Enter a date" in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert db.session.scalar(select(func.count()).select_from(Payout)) == 0
    assert finance.get("/finance/payouts/999999").status_code == 404
    assert finance.get("/finance/payouts/999999/lines.csv").status_code == 404
    r = finance.get("/finance/exports/payouts.csv", query_string={"start": "2026-05-01", "end": "2026-04-01"})
    assert r.status_code == 422


def test_stripe_unreachable_says_so(db, client, make_client, app):
    finance = make_client("finance")
    old = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens there
    try:
        r = _sync(finance)
    finally:
        app.config["STRIPE_API_BASE"] = old
    assert r.status_code == 502 and "payment provider" in r.get_data(as_text=True)


@pytest.mark.parametrize("role", ["participant", "facilitator", "provider"])
def test_other_roles_get_403(db, client, stripe_proxy, make_client, role):
    sc = poh.paid_refunded_disputed(client, stripe_proxy, refund=0, dispute=False)
    po = stripe_proxy.create_payout(sc.txns)
    _sync(make_client("finance"))
    payout = db.session.scalar(select(Payout).where(Payout.stripe_payout_id == po["id"]))
    other = make_client(factories.user(role, password=None))
    for url in ("/finance/payouts", f"/finance/payouts/{payout.id}", f"/finance/payouts/{payout.id}/lines.csv",
                "/finance/exports/payouts.csv"):
        assert other.get(url).status_code == 403, (role, url)
    assert other.post("/finance/payouts/sync").status_code == 403
