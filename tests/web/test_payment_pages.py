"""Participant payment pages and the finance refund page, through the test client."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import func, select

from retreat.payments import ledger
from retreat.payments.models import DiscountCode, LedgerEntry, Payment
from tests import factories
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


@pytest.fixture()
def make_client(stripe_app, db):
    """Here: a holder of the app for ``ph.signed_in``."""
    class _Holder:
        app = stripe_app
    return _Holder


def _participant(make_client, c):
    enr = ph.applicant(c)
    db_commit()
    return ph.signed_in(make_client.app, enr.participant), enr


def db_commit():
    """Views roll back on bad input: commit the test's data first (the test's outer transaction
    is still rolled back at the end)."""
    from retreat.extensions import db

    db.session.commit()


def _token(base, number=ph.VISA):
    r = requests.post(f"{base}/v1/tokens", data={"card[number]": number, "card[exp_month]": "12",
                                                 "card[exp_year]": "2034", "card[cvc]": "123", "key": "pk_test_x"})
    return r.json()["card"]["id"]


def test_deposit_checkout_return_page_and_history(db, make_client, localstripe):
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    client, enr = _participant(make_client, c)
    page = client.get(f"/me/payments/{enr.id}")
    assert page.status_code == 200, page.location
    assert b"Pay deposit $500.00" in page.data
    r = client.post(f"/me/payments/{enr.id}/start", data={"kind": "deposit", "amount": "50000"})
    assert r.status_code == 302 and "/checkout/" in r.location
    checkout = client.get(r.location)
    html = checkout.get_data(as_text=True)
    assert f'src="{localstripe}/js.stripe.com/v3/"' in html and 'js/checkout.js' in html
    assert "<script>" not in html  # no inline script (CSP)
    assert localstripe in checkout.headers["Content-Security-Policy"]
    payment = db.session.scalar(select(Payment).where(Payment.enrollment_id == enr.id))
    card_url = re.search(r'data-card-url="([^"]+)"', html).group(1)
    assert client.post(card_url, json={}).status_code == 422
    res = client.post(card_url, json={"payment_method": _token(localstripe)})
    assert res.status_code == 200 and res.json["status"] == "succeeded"
    ret = client.get(f"/me/payments/{enr.id}/return/{payment.id}")  # before any webhook
    text = ret.get_data(as_text=True)
    assert "payment received" in text and "Your seat is confirmed" in text and "$4,000.00" in text
    history = client.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert "Deposit" in history and "Paid" in history and "Pay the balance in full $4,000.00" in history
    assert ledger.paid(enr.id) == 50000


def test_stale_amount_is_refused_with_a_message(db, make_client):
    c = ph.cohort(deposit_minor=50000)
    client, enr = _participant(make_client, c)
    r = client.post(f"/me/payments/{enr.id}/start", data={"kind": "deposit", "amount": "40000"},
                    follow_redirects=True)
    assert "The amount to pay is now $500.00" in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_other_participants_payments_are_not_found(db, make_client):
    c = ph.cohort()
    _, enr = _participant(make_client, c)
    users = factories.user("participant", password=None), factories.user("finance", password=None)
    db_commit()
    assert ph.signed_in(make_client.app, users[0]).get(f"/me/payments/{enr.id}").status_code == 404
    assert ph.signed_in(make_client.app, users[1]).get(f"/me/payments/{enr.id}").status_code == 403


def test_discount_form_errors_and_success(db, make_client):
    c = ph.cohort(price_minor=100000, deposit_minor=10000)
    db.session.add(DiscountCode(code="TEN", kind="percent", percent=10))
    client, enr = _participant(make_client, c)
    bad = client.post(f"/me/payments/{enr.id}/discount", data={"code": "NOPE"})
    assert bad.status_code == 422 and "This discount code is not valid." in bad.get_data(as_text=True)
    ok = client.post(f"/me/payments/{enr.id}/discount", data={"code": "ten"}, follow_redirects=True)
    assert "Discount applied." in ok.get_data(as_text=True) and "$900.00" in ok.get_data(as_text=True)


def test_finance_refund_page(db, make_client):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    from retreat.payments import checkout as payments
    from retreat.timeutil import now_utc

    payments.sync_payment_intent(pi, now=now_utc())
    fin_user, someone = factories.user("finance", password=None), factories.user("participant", password=None)
    db_commit()
    fin = ph.signed_in(make_client.app, fin_user)
    page = fin.get(f"/finance/payments/enrollments/{enr.id}")
    assert page.status_code == 200, page.get_data(as_text=True)[-1500:] and pi["id"] in page.get_data(as_text=True)
    too_much = fin.post(f"/finance/payments/enrollments/{enr.id}/refund", data={"amount": "600", "reason": "x"})
    assert too_much.status_code == 422 and "more than was paid" in too_much.get_data(as_text=True)
    no_reason = fin.post(f"/finance/payments/enrollments/{enr.id}/refund", data={"amount": "10", "reason": ""})
    assert no_reason.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    _confirm_page, ok = ph.finance_refund(fin, enr.id, "125.50", "Goodwill")
    assert ok.status_code == 302
    assert ledger.paid(enr.id) == 50000 - 12550
    from retreat.models import AuditEvent

    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "payments.refund_decided")).actor_id == fin.user.id
    assert fin.get("/finance/payments").status_code == 200
    assert ph.signed_in(make_client.app, someone).get(f"/finance/payments/enrollments/{enr.id}").status_code == 403


def test_abandoning_a_deposit_releases_the_hold_and_cancels_the_intent(db, make_client):
    c = ph.cohort(capacity=1)
    client, enr = _participant(make_client, c)
    r = client.post(f"/me/payments/{enr.id}/start", data={"kind": "deposit", "amount": str(c.deposit_minor)})
    client.get(r.location)
    payment = db.session.scalar(select(Payment).where(Payment.enrollment_id == enr.id))
    out = client.post(f"/me/payments/{enr.id}/cancel/{payment.id}", follow_redirects=True)
    assert "seat hold released" in out.get_data(as_text=True)
    db.session.expire_all()
    assert payment.status == "canceled" and enr.seat == "none" and c.seats_taken == 0
    from retreat.payments import gateway

    assert gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)["status"] == "canceled"


def test_receipt_and_reminder_emails_render_with_a_subject(app):
    from jinja2 import Environment

    with app.test_request_context():
        from flask import render_template

        env: Environment = app.jinja_env
        ctx = {"participant_name": "Pat", "retreat_title": "Mountain", "cohort_title": "Autumn", "kind": "deposit",
               "amount": "¥5,000", "date": "Sat 21 Nov 2026", "paid": "¥5,000", "balance": "¥0", "reference": "pi_1",
               "reason": "Goodwill", "url": "http://x/me/payments/1", "which": "due7", "seq": 1, "count": 3,
               "due_on": "2027-01-01", "practice_name": "Open Meadow"}
        for name in ("receipt_charge", "receipt_refund", "payment_reminder"):
            tpl = env.get_template(f"emails/{name}.txt")
            subject = "".join(tpl.blocks["subject"](tpl.new_context(ctx))).strip()
            assert ("2027-01-01" if name == "payment_reminder" else "¥5,000") in subject
            body = render_template(f"emails/{name}.txt", **ctx)
            assert "Pat" in body and "988" in body
            assert "Autumn" in render_template(f"emails/{name}.html", **ctx)


def test_plan_selector_shows_the_chosen_plan(db, make_client, localstripe):
    """Issue #16, 23: after choosing installments the selector said "Pay in full"."""
    from retreat.payments import checkout as payments
    from retreat.timeutil import now_utc

    c = ph.cohort(price_minor=100000, deposit_minor=10000)
    client, enr = _participant(make_client, c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    db_commit()
    before = client.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert re.search(r'<option selected value="1">Pay in full', before)
    r = client.post(f"/me/payments/{enr.id}/plan", data={"count": "3"}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert "Your payment plan is set." in html
    assert re.search(r'<option selected value="3">3 installments</option>', html), html
    assert not re.search(r'<option selected value="1">', html)
