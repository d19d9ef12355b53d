"""The screening fee through the pages, with localstripe: set in the cohort form (bad values
refused with a message, nothing saved); said plainly on the apply page and before paying; paid with
the application, which counts as submitted only then; a cohort without a fee unchanged."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from retreat.cohorts.models import Cohort, Enrollment
from retreat.extensions import db as _db
from retreat.payments import ledger
from retreat.payments.models import Payment
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests import payments_helpers as ph
from tests.web.test_cohort_refund_tiers import _data

pytestmark = pytest.mark.usefixtures("stripe_app")


def _token(base, number=ph.VISA):
    r = requests.post(f"{base}/v1/tokens", data={"card[number]": number, "card[exp_month]": "12",
                                                 "card[exp_year]": "2034", "card[cvc]": "123", "key": "pk_test_x"})
    return r.json()["card"]["id"]


@pytest.fixture()
def cohort(db):
    return fc.cohort(starts_at=now_utc() + timedelta(days=120), price_minor=400000, deposit_minor=50000)


@pytest.mark.parametrize(("fee", "message"), [
    ("-10", "The screening fee cannot be negative"),
    ("4500", "The screening fee cannot be more than the price ($4,000.00)."),
    ("500", "it must be less than the deposit ($500.00)"),
    ("12.345", "at most 2 decimal places"),
])
def test_bad_fees_are_refused_and_nothing_changes(make_client, db, cohort, fee, message):
    admin = make_client("admin")
    r = admin.post(f"/facilitator/cohorts/{cohort.id}/edit", data=_data(
        cohort, screening_fee=fee, **{"tiers-0-days": "60", "tiers-0-percent": "100"}))
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    _db.session.expire_all()
    assert _db.session.get(Cohort, cohort.id).screening_fee_minor == 0


def test_a_fee_is_saved_and_shown_in_the_form(make_client, db, cohort):
    f = make_client("facilitator")
    r = f.post(f"/facilitator/cohorts/{cohort.id}/edit", data=_data(
        cohort, screening_fee="150", **{"tiers-0-days": "60", "tiers-0-percent": "100"}))
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    _db.session.expire_all()
    assert _db.session.get(Cohort, cohort.id).screening_fee_minor == 15000
    page = f.get(f"/facilitator/cohorts/{cohort.id}/edit").get_data(as_text=True)
    assert 'name="screening_fee"' in page and 'value="150.00"' in page
    assert "The screening fee ($150.00) is kept if you withdraw" in page  # the policy text it generates


def test_apply_pay_the_fee_and_the_application_is_submitted(app, db, localstripe):
    c = fc.cohort(starts_at=now_utc() + timedelta(days=120), price_minor=400000, deposit_minor=50000,
                  screening_fee_minor=15000)
    person = factories.user("participant", password=None)
    _db.session.commit()
    client = ph.signed_in(app, person)
    form = client.get(f"/me/cohorts/{c.id}/apply").get_data(as_text=True)
    assert "Screening fee $150.00" in form and "credited against the price" in form
    assert "If the medical provider does not clear you, it is refunded in full. If you withdraw, it is kept." in form
    assert "Continue to the screening fee" in form
    r = client.post(f"/me/cohorts/{c.id}/apply", data={"motivation": "Curious", "agree": "y"})
    assert r.status_code == 302
    enr = _db.session.scalar(select(Enrollment).where(Enrollment.participant_id == person.id))
    page = client.get(r.location).get_data(as_text=True)
    assert "pay the screening fee below and your application is submitted" in page
    assert "your application is not submitted yet" in page and "Pay the screening fee $150.00" in page
    # the intake cannot go to the provider, and no seat can be held, before it is paid
    hold = client.post(f"/me/enrollments/{enr.id}/hold", follow_redirects=True).get_data(as_text=True)
    assert "Pay the screening fee first" in hold and enr.seat == "none"
    start = client.post(f"/me/payments/{enr.id}/start", data={"kind": "screening_fee", "amount": "15000"})
    assert start.status_code == 302 and "/checkout/" in start.location
    checkout = client.get(start.location).get_data(as_text=True)
    assert "Pay screening fee: $150.00" in checkout and "it is kept" in checkout
    payment = _db.session.scalar(select(Payment).where(Payment.enrollment_id == enr.id))
    assert payment.kind == "screening_fee" and payment.idempotency_key == f"screening_fee-{enr.id}-1"
    card_url = re.search(r'data-card-url="([^"]+)"', checkout).group(1)
    res = client.post(card_url, json={"payment_method": _token(localstripe)})
    assert res.status_code == 200 and res.json["status"] == "succeeded"
    ret = client.get(f"/me/payments/{enr.id}/return/{payment.id}").get_data(as_text=True)
    assert "Your screening fee is paid and your application is submitted" in ret
    _db.session.expire_all()
    assert ledger.paid(enr.id) == 15000
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "your application is submitted" in page and "Pay the screening fee" not in page
    payments = client.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert "Screening fee" in payments and "Pay deposit $350.00" in payments  # credited against the deposit
    # paying it twice is refused with a message
    again = client.post(f"/me/payments/{enr.id}/start", data={"kind": "screening_fee", "amount": "15000"},
                        follow_redirects=True).get_data(as_text=True)
    assert "There is no screening fee to pay" in again


def test_a_cohort_without_a_fee_applies_as_before(app, db):
    c = fc.cohort(starts_at=now_utc() + timedelta(days=120))
    person = factories.user("participant", password=None)
    _db.session.commit()
    client = ph.signed_in(app, person)
    form = client.get(f"/me/cohorts/{c.id}/apply").get_data(as_text=True)
    assert "Screening fee" not in form and "Submit my application" in form
    r = client.post(f"/me/cohorts/{c.id}/apply", data={"motivation": "Curious", "agree": "y"}, follow_redirects=True)
    text = r.get_data(as_text=True)
    assert "Thank you for applying!" in text and "screening fee" not in text.lower()


def test_the_fee_is_recorded_from_its_webhook_once(app, db):
    c = fc.cohort(starts_at=now_utc() + timedelta(days=120), screening_fee_minor=15000)
    enr = fc.applicant(c, now=now_utc())
    _, pi = ph.start_and_confirm(enr, "screening_fee")
    _db.session.commit()
    client = app.test_client()
    for _ in range(2):  # Stripe may deliver an event twice
        assert ph.deliver(client, "payment_intent.succeeded", pi).status_code == 200
    _db.session.expire_all()
    enr = _db.session.get(Enrollment, enr.id)
    assert ledger.paid(enr.id) == 15000 and enr.screening_fee_paid_at is not None
    assert [e.memo for e in ledger.entries(enr.id) if e.entry_type == "charge"] == ["screening_fee payment"]


def test_the_receipt_email_and_the_withdrawal_note_name_the_fee(app, db):
    from retreat.messaging.models import OutboxMessage
    from retreat.messaging.render import render_email
    from retreat.payments import checkout as payments

    c = fc.cohort(starts_at=now_utc() + timedelta(days=120), screening_fee_minor=15000)
    enr = fc.applicant(c, now=now_utc())
    _, pi = ph.start_and_confirm(enr, "screening_fee")
    payments.sync_payment_intent(pi, now=now_utc())
    _db.session.commit()
    mail = _db.session.scalar(select(OutboxMessage).where(OutboxMessage.template == "receipt_charge"))
    text = render_email(mail.template, mail.context).text
    assert "we received your screening fee payment" in text and "Your application is now submitted" in text
    assert "kept if you withdraw" in text
    page = ph.signed_in(app, enr.participant).get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "the screening fee of $150.00 is kept, and you have paid nothing else to refund" in page
    assert "($350.00 left to pay: your screening fee counts toward it)" in page
