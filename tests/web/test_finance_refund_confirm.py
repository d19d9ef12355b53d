"""Finance refunds: a confirmation step (amount, paid, already refunded, what the policy would give)
that changes nothing; confirming twice refunds once; the internal note stays with finance; a refund
above what was paid is refused."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.extensions import db as _db
from retreat.models import OutboxMessage
from retreat.payments import checkout as payments
from retreat.payments import ledger
from retreat.payments.models import LedgerEntry, Refund
from retreat.timeutil import now_utc
from tests import factories
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")
NOTE = "Goodwill approved by Dana after the phone call 7 Dec"


@pytest.fixture()
def paid(stripe_app, db):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    fin = factories.user("finance", password=None)
    _db.session.commit()
    return enr, ph.signed_in(stripe_app, fin)


def test_the_confirmation_shows_the_figures_and_changes_nothing(db, paid):
    enr, fin = paid
    before = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    page = fin.post(f"/finance/payments/enrollments/{enr.id}/refund",
                    data={"amount": "125.50", "reason": "Sorry for the mix-up", "internal_note": NOTE})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'data-testid="confirm-amount">\$125\.50<', html)
    assert re.search(r'data-testid="confirm-paid">\$500\.00<', html)
    assert re.search(r'data-testid="confirm-refunded">\$0\.00', html)
    # the cohort starts in 120 days: the policy would give everything back
    assert re.search(r'data-testid="confirm-policy">\$500\.00 \(100 %', html)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == before
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_confirming_refunds_once_and_the_note_stays_with_finance(app, db, paid):
    enr, fin = paid
    data = {"amount": "125.50", "reason": "Sorry for the mix-up", "internal_note": NOTE}
    page, done = ph.finance_refund(fin, enr.id, **data)
    assert done.status_code == 302
    assert ledger.paid(enr.id) == 50000 - 12550
    expected = re.search(r'name="expected"[^>]*value="(\d+)"|value="(\d+)"[^>]*name="expected"',
                         page.get_data(as_text=True))
    again = fin.post(f"/finance/payments/enrollments/{enr.id}/refund/confirm",
                     data=data | {"expected": expected.group(1) or expected.group(2)})
    assert again.status_code == 409 and "nothing was refunded" in again.get_data(as_text=True)
    db.session.expire_all()
    rows = db.session.scalars(select(Refund)).all()
    assert len(rows) == 1 and rows[0].internal_note == NOTE and rows[0].reason == "Sorry for the mix-up"
    assert NOTE in fin.get(f"/finance/payments/enrollments/{enr.id}").get_data(as_text=True)
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "payments.refund_internal_note"))
    assert ev.details["internal_note"] == NOTE
    me = ph.signed_in(app, enr.participant)
    for url in (f"/me/payments/{enr.id}", f"/me/enrollments/{enr.id}"):
        html = me.get(url).get_data(as_text=True)
        assert "Sorry for the mix-up" in html and NOTE not in html, url
    for msg in db.session.scalars(select(OutboxMessage)).all():
        assert NOTE not in str(msg.context or "") + str(getattr(msg, "body", "") or "")


@pytest.mark.parametrize("data,message", [
    ({"amount": "500.01", "reason": "x"}, "That is more than was paid: at most $500.00"),
    ({"amount": "0", "reason": "x"}, "greater than zero"),
    ({"amount": "abc", "reason": "x"}, "Enter an amount such as 125.00"),
    ({"amount": "10", "reason": ""}, "Give a reason for the refund."),
    ({"amount": "10", "reason": "x", "internal_note": "n" * 1001}, "at most 1000 characters"),
])
def test_bad_input_is_refused_at_the_first_step(db, paid, data, message):
    enr, fin = paid
    resp = fin.post(f"/finance/payments/enrollments/{enr.id}/refund", data=data)
    assert resp.status_code == 422 and message in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_tampered_confirmation_above_what_was_paid_is_refused(db, paid):
    enr, fin = paid
    resp = fin.post(f"/finance/payments/enrollments/{enr.id}/refund/confirm",
                    data={"amount": "900", "reason": "x", "expected": "50000"})
    assert resp.status_code == 422 and "more than was paid" in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
