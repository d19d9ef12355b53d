"""The demo tells the truth: seeded through the rules, what the roster says agrees with the intake,
consent and payment records; the finance figures are the ledger's; texts follow the plan; the
program guide is a PDF about the retreat; a second seed changes nothing."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from retreat.cli import demo, demo_money, demo_texts
from retreat.cli.demo_catalog import demo_retreat
from retreat.clinical import roster
from retreat.clinical.models import ClearanceRequest, Intake
from retreat.cohorts import preparation
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, EnrollmentStatus, SeatState
from retreat.finance import reports
from retreat.integration.plan import TEMPLATE
from retreat.money import format_money
from retreat.payments import ledger, pricing
from retreat.payments.models import DiscountRedemption, Installment, LedgerEntry, PriceOverride, Refund
from tests.conftest import login_as

PAID = {EnrollmentStatus.DEPOSIT_PAID, EnrollmentStatus.BALANCE_PAID, EnrollmentStatus.ATTENDED,
        EnrollmentStatus.COMPLETED}
SUBMITTED = {EnrollmentStatus.INTAKE_SUBMITTED, EnrollmentStatus.CLEARANCE_PENDING, EnrollmentStatus.CLEARED} | PAID


@pytest.fixture()
def seeded(app, db):
    demo.seed(online=False)
    return db


def _cohorts():
    return list(db_scalars(select(Cohort).order_by(Cohort.starts_at)))


def db_scalars(stmt):
    from retreat.extensions import db

    return db.session.scalars(stmt)


def test_every_roster_row_agrees_with_its_records(seeded):
    rows_seen = 0
    for cohort in _cohorts():
        for row in roster.roster(cohort, status_filter="all"):
            enr, status = row.enrollment, EnrollmentStatus(row.enrollment.status)
            rows_seen += 1
            intake = seeded.session.scalar(select(Intake).where(Intake.enrollment_id == enr.id))
            paid = ledger.paid(enr.id)
            if status in SUBMITTED:
                assert intake is not None and intake.status == "submitted", (cohort.title, row.name, row.status)
                assert row.intake == "Submitted", (cohort.title, row.name, row.intake)
            if status == EnrollmentStatus.APPLIED:
                assert row.intake == "Not yet" and intake is None, (row.name, row.intake)
            if status in PAID:
                req = seeded.session.scalar(select(ClearanceRequest).where(
                    ClearanceRequest.enrollment_id == enr.id, ClearanceRequest.decision == "cleared"))
                assert req is not None and req.license_number, (row.name, "paid without a clearance")
                if status in (EnrollmentStatus.COMPLETED, EnrollmentStatus.ATTENDED):  # valid until the retreat's end
                    assert row.clearance_key in ("cleared", "expired"), (row.name, row.clearance)
                else:
                    assert row.clearance_key == "cleared", (row.name, row.clearance)
                assert row.consents_ok and preparation.all_signed(enr), (row.name, "consents")
            if row.payment in ("Deposit paid", "Paid in full"):
                assert paid >= cohort.deposit_minor or paid >= pricing.quote(enr).total, (row.name, paid)
            if row.payment == "Paid in full":
                assert pricing.quote(enr).balance <= 0, (row.name, pricing.quote(enr).balance)
            if row.payment in ("Not paid", "Paying (seat held)", "Seat offered"):
                assert paid == 0 or status == EnrollmentStatus.WITHDRAWN, (row.name, paid)
            if status == EnrollmentStatus.WITHDRAWN:
                assert paid == ledger._sum(enr.id, ("charge",)) - ledger.refunded(enr.id)
    assert rows_seen == 6 + 7 + 12 + 10  # Autumn, Spring, Early spring, Summer


def test_finance_totals_are_the_ledger_and_the_participants_page(app, seeded, client):
    charges = seeded.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.entry_type == "charge"))
    refunds = seeded.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.entry_type == "refund"))
    assert charges > 0 and refunds < 0  # payments and a refund (the withdrawal in Early spring)
    figures = reports.totals(reports.make_filter(tz="UTC"))["USD"]
    assert figures.collected == charges
    assert figures.net == seeded.session.scalar(select(func.sum(LedgerEntry.amount_minor)).where(
        LedgerEntry.entry_type.in_(("charge", "refund", "dispute", "fee"))))
    refund = seeded.session.scalar(select(Refund))
    assert refund.status == "succeeded" and refund.kind == "policy"
    assert refund.amount_minor == refund.payment.amount_minor // 2  # 45 days before: the 50 % tier

    pat = demo.staff("participant")
    spring = seeded.session.scalar(select(Enrollment).join(Cohort).where(
        Enrollment.participant_id == pat.id, Cohort.title == "Spring cohort"))
    assert spring.status == EnrollmentStatus.DEPOSIT_PAID and spring.seat == SeatState.CONFIRMED
    q = pricing.quote(spring)
    installments = seeded.session.scalars(select(Installment).where(
        Installment.enrollment_id == spring.id, Installment.is_current.is_(True))).all()
    assert len(installments) == 3 and q.paid == spring.cohort.deposit_minor + installments[0].amount_minor
    login_as(app, client, pat)
    page = client.get(f"/me/payments/{spring.id}").get_data(as_text=True)
    assert format_money(q.paid, "USD") in page and format_money(q.balance, "USD") in page


def test_one_discount_and_one_scholarship_set_by_finance(seeded):
    finance = demo.staff("finance")
    (red,) = seeded.session.scalars(select(DiscountRedemption)).all()
    assert red.status == "applied" and red.code.requires_approval and red.decided_by_id == finance.id
    assert red.evidence and ledger.price_adjustments(red.enrollment_id) == -red.amount_minor
    (schol,) = seeded.session.scalars(select(PriceOverride)).all()
    enr = seeded.session.get(Enrollment, schol.enrollment_id)
    assert schol.set_by_id == finance.id and schol.reason and schol.price_minor < enr.cohort.price_minor
    assert pricing.quote(enr).total == schol.price_minor


def test_texts_and_circles_follow_the_plan(seeded):
    weeks = TEMPLATE["circle_weeks"]
    words = demo_texts.number_word(weeks)
    retreat = demo_retreat()
    texts = [retreat.description, retreat.included, retreat.summary] + [c.refund_policy for c in _cohorts()]
    for text in texts:
        for n in re.findall(r"\b(\w+)(?: weekly)?(?: online)? (?:integration )?circles\b", text, flags=re.I):
            if n.lower() in demo_texts._NUMBER_WORDS or n.isdigit():
                assert n.lower() in (words, str(weeks)), (n, text)
        for n in re.findall(r"for (\w+) weeks afterwards", text):
            assert n == words
    assert f"{words} weeks afterwards" in retreat.description
    for c in _cohorts():
        circles = seeded.session.scalar(select(func.count()).select_from(CohortSession).where(
            CohortSession.cohort_id == c.id, CohortSession.kind == "integration_circle"))
        assert circles == weeks, (c.title, circles)
        assert "60 days before the start" in c.refund_policy and "50% back until 30 days" in c.refund_policy


def test_the_program_guide_downloads_as_a_pdf_about_the_retreat(seeded, client):
    retreat = demo_retreat()
    r = client.get(f"/retreats/{retreat.slug}/guide.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(r.data)).pages)
    text = " ".join(text.split())
    assert retreat.title in text
    assert f"{demo_texts.circles_in_plan().capitalize()} weekly online integration circles" in text
    assert "Second dosing session" in text and "Spring cohort" in text
    assert "eight" not in text.lower()
    cohort = seeded.session.scalar(select(Cohort).where(Cohort.title == "Spring cohort"))
    assert "program guide" in client.get(f"/retreats/{retreat.slug}").get_data(as_text=True).lower() or \
        "program guide" in client.get(f"/cohorts/{cohort.id}").get_data(as_text=True).lower()


def test_seeding_twice_changes_nothing(seeded):
    counts = [seeded.session.scalar(select(func.count()).select_from(m)) for m in (Enrollment, LedgerEntry, Cohort)]
    demo.seed(online=False)
    assert [seeded.session.scalar(select(func.count()).select_from(m))
            for m in (Enrollment, LedgerEntry, Cohort)] == counts


def test_a_demo_stopped_part_way_is_refused_clearly(app, db):
    from retreat.core.errors import Conflict

    demo.seed_staff()
    from retreat.cli.demo_catalog import make_retreat

    make_retreat(admin=demo.staff("admin"), now=demo_money_now())
    with pytest.raises(Conflict, match="incomplete"):
        demo.seed(online=False)


def demo_money_now():
    from retreat.timeutil import now_utc

    return now_utc()


del demo_money


def test_online_the_demo_pays_through_stripe_and_reconciles(stripe_app, db, client):
    """With localstripe up (as under ``make run``), every demo payment is a Stripe PaymentIntent whose
    signed ``payment_intent.succeeded`` event went through the webhook processing, and the
    reconciliation run finds every Stripe object in the ledger."""
    from retreat.finance.reconciliation_models import ReconciliationRun
    from retreat.payments.models import Payment, StripeEvent

    demo.seed(online=True)
    payments = db.session.scalars(select(Payment).where(Payment.status == "succeeded")).all()
    assert payments and all(p.stripe_payment_intent_id.startswith("pi_") for p in payments)
    events = set(db.session.scalars(select(StripeEvent.object_id)))
    assert {p.stripe_payment_intent_id for p in payments} <= events
    (run,) = db.session.scalars(select(ReconciliationRun)).all()
    assert run.status == "done" and run.open_count == 0
    assert run.matched_count >= len(payments) + 1  # the charges and the refund
    login_as(stripe_app, client, demo.staff("finance"))
    page = client.get(f"/finance/reconciliation/runs/{run.id}").get_data(as_text=True)
    assert str(run.matched_count) in page


def test_online_one_participant_is_on_automatic_installments(stripe_app, db):
    """Blair's balance is three installments charged automatically from a 4242 card saved with a
    SetupIntent at localstripe (issue #18 item 1)."""
    from retreat.accounts.models import User
    from retreat.cohorts.models import Enrollment
    from retreat.payments import autopay, gateway

    demo.seed(online=True)
    from retreat.payments.autopay_models import AutopayMandate

    blair = db.session.scalar(select(User).where(User.name == "Blair Chen"))
    [mandate] = db.session.scalars(select(AutopayMandate).join(Enrollment).where(
        Enrollment.participant_id == blair.id)).all()
    enr = mandate.enrollment
    assert autopay.active_mandate(enr.id).id == mandate.id and enr.cohort.title.startswith("Spring")
    assert mandate.card_label == "Visa ending 4242"
    assert len(autopay.schedule(enr)) == 3 and "You authorise" in mandate.consent_text
    assert gateway.card_details(mandate.stripe_payment_method_id)["customer"] == mandate.stripe_customer_id
