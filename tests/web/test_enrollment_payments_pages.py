"""The tracker leads into payments; withdrawing shows the refund; staff cancel a cohort."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import seats
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.extensions import db
from retreat.payments import checkout as payments
from retreat.payments.models import Payment, Refund
from retreat.timeutil import now_utc
from tests import factories
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def _participant(app, c):
    enr = ph.applicant(c)
    db.session.commit()
    return ph.signed_in(app, enr.participant), enr


def test_tracker_pay_button_leads_to_checkout(db, stripe_app):
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    client, enr = _participant(stripe_app, c)
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "Reserve my seat and pay the deposit" in page and "Card payment opens here" not in page
    assert client.post(f"/me/enrollments/{enr.id}/hold").status_code == 302
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert f'action="/me/payments/{enr.id}/start"' in page
    assert 'name="kind" value="deposit"' in page and 'name="amount" value="50000"' in page
    assert ">Pay the deposit</button>" in page and "$500.00" in page
    r = client.post(f"/me/payments/{enr.id}/start", data={"kind": "deposit", "amount": "50000"})
    assert r.status_code == 302 and "/checkout/" in r.location
    checkout = client.get(r.location)
    assert checkout.status_code == 200 and "$500.00" in checkout.get_data(as_text=True)
    assert db.session.scalar(select(Payment).where(Payment.enrollment_id == enr.id)).amount_minor == 50000


def test_confirmed_seat_tracker_offers_the_balance(db, stripe_app):
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    client, enr = _participant(stripe_app, c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    db.session.commit()
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "Your seat is confirmed" in page and "The balance of $4,000.00 is due" in page
    assert f'href="/me/payments/{enr.id}">Pay the balance</a>' in page
    assert client.get(f"/me/payments/{enr.id}").status_code == 200


def test_withdraw_shows_the_refund_before_and_after(db, stripe_app):
    c = ph.cohort(deposit_minor=50000, starts_at=now_utc() + timedelta(days=45))  # 50 % step
    client, enr = _participant(stripe_app, c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    db.session.commit()
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "If you withdraw now, you get back <strong>$250.00</strong> (50 % of the $500.00 you paid)" in page
    r = client.post(f"/me/enrollments/{enr.id}/withdraw", data={"reason": "Work trip"}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert "we are refunding $250.00 to your card" in html
    assert "<strong>$250.00</strong> — Withdrawal: 50 % refund" in html and "on its way to your card" in html
    db.session.expire_all()
    refund = db.session.scalar(select(Refund).where(Refund.enrollment_id == enr.id))
    assert (refund.kind, refund.amount_minor, refund.status) == ("policy", 25000, "pending")


def test_staff_cancel_cohort_page_and_completed_refused(db, stripe_app):
    c = ph.cohort()
    enr = ph.applicant(c)
    seats.take_hold(enr, now=now_utc(), actor=None)
    other = ph.cohort()
    fac = factories.user("facilitator", password=None)
    db.session.commit()
    staff = ph.signed_in(stripe_app, fac)
    page = staff.get(f"/facilitator/cohorts/{c.id}").get_data(as_text=True)
    assert "Cancelling closes every application and refunds everything paid in full" in page
    r = staff.post(f"/facilitator/cohorts/{c.id}/status", data={"status": "cancelled"}, follow_redirects=True)
    assert "Every participant was emailed" in r.get_data(as_text=True)
    db.session.expire_all()
    assert enr.status == S.CANCELLED and enr.seat == "none"
    staff.post(f"/facilitator/cohorts/{other.id}/status", data={"status": "completed"})
    r = staff.post(f"/facilitator/cohorts/{other.id}/status", data={"status": "cancelled"}, follow_redirects=True)
    assert "A completed cohort cannot be cancelled." in r.get_data(as_text=True)
    db.session.expire_all()
    assert other.status == "completed"
    # the participant sees their closed application
    mine = ph.signed_in(stripe_app, enr.participant).get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "Cohort cancelled by the practice" in mine


def test_a_withdrawn_enrollment_owes_nothing_and_shows_paid_and_refunded(db, stripe_app):
    from retreat.cohorts import enrollment as enrollment_svc
    from retreat.messaging.models import OutboxMessage
    from retreat.messaging.render import render_email
    from retreat.payments import refunds

    c = ph.cohort(price_minor=450000, deposit_minor=50000, starts_at=now_utc() + timedelta(days=45))
    c.balance_due_on = (c.starts_at - timedelta(days=20)).date()
    client, enr = _participant(stripe_app, c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    db.session.commit()
    client.post(f"/me/enrollments/{enr.id}/withdraw", data={"reason": "Work trip."})
    refunds.submit_pending(now=now_utc())
    db.session.commit()
    page = client.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert "$4,000.00" not in page and "due by" not in page
    assert 'data-testid="paid">$500.00<' in page and 'data-testid="refunded">$250.00<' in page
    assert "Nothing is owed: this application is closed (Withdrawn)." in page
    mail = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template == "receipt_refund"))
    rendered = render_email(mail.template, mail.context)
    for body in (rendered.text, rendered.html):
        assert "Remaining balance" not in body and "$4,050.00" not in body and "$250.00" in body
        assert "This application is closed, so nothing more is owed." in body
    assert "Paid in all:       $500.00\nRefunded in all:   $250.00" in rendered.text
    db.session.expire_all()
    steps = {s["status"]: s["state"] for s in enrollment_svc.tracker_steps(enr)}
    assert steps["deposit_paid"] == "done" and steps["balance_paid"] == "upcoming"
    assert "current" not in steps.values()


def test_a_deposit_paid_before_clearance_is_done_on_the_tracker_after_an_exit(db, stripe_app):
    from retreat.cohorts import enrollment as enrollment_svc

    c = ph.cohort(deposit_minor=50000)
    _, enr = _participant(stripe_app, c)
    assert c.deposit_timing == "before_clearance" and enr.status == S.APPLIED
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    enrollment_svc.withdraw(enr, now=now_utc(), actor=None)
    steps = {s["status"]: s["state"] for s in enrollment_svc.tracker_steps(enr)}
    assert steps == {"applied": "done", "intake_submitted": "upcoming", "clearance_pending": "upcoming",
                     "cleared": "upcoming", "deposit_paid": "done", "balance_paid": "upcoming",
                     "attended": "upcoming", "completed": "upcoming"}
