"""Automatic installments against PostgreSQL (when set) and localstripe: the mandate, the job that
charges on the cohort-local due date, declines with retries, 3-D Secure, a card removed mid-plan."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.models import OutboxMessage
from retreat.payments import autopay, autopay_charges, gateway, ledger
from retreat.payments.autopay_models import AttemptStatus, AutopayAttempt, AutopayMandate, MandateStatus
from retreat.payments.models import Payment, PaymentStatus
from retreat.timeutil import human_date, now_utc
from tests import autopay_helpers as ah
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")


def _emails(enr, which=None):
    rows = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "autopay_notice",
                                                  OutboxMessage.recipient_user_id == enr.participant_id)
                      .order_by(OutboxMessage.id))
    return [m for m in rows if which is None or m.context["which"] == which]


def db_scalars(stmt):
    from retreat.extensions import db

    return db.session.scalars(stmt).all()


def _attempts(enr):
    return db_scalars(select(AutopayAttempt).join(AutopayMandate).where(AutopayMandate.enrollment_id == enr.id)
                      .order_by(AutopayAttempt.id))


def test_saving_a_card_stores_the_mandate_consent_and_says_reminders_are_automatic(db, app):
    enr, plan = ah.on_plan(3)
    again = autopay.start(enr, now=now_utc(), actor=None)
    m = ah.save_card(enr)
    assert again.id == m.id  # a double submit of the plan form: one mandate
    assert autopay.complete(m.id, now=now_utc(), actor=None).id == m.id  # a second return: nothing new
    assert db.session.scalar(select(func.count()).select_from(AutopayMandate)
                             .where(AutopayMandate.enrollment_id == enr.id)) == 1
    assert (m.status, m.card_brand, m.card_last4, m.card_expiry) == ("active", "visa", "4242", "12/2034")
    assert m.stripe_customer_id.startswith("cus_") and m.stripe_payment_method_id.startswith("pm_")
    assert gateway.card_details(m.stripe_payment_method_id)["customer"] == m.stripe_customer_id
    practice = app.config["PRACTICE_NAME"]
    assert m.consent_text.startswith(f"You authorise {practice} to charge Visa ending 4242 $300.00 on "
                                     f"{human_date(plan[0].due_on)}")
    assert f"$300.00 on {human_date(plan[2].due_on)}" in m.consent_text and m.consent_version == "autopay-v1"
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "autopay_mandate")))
    assert {"payments.autopay_started", "payments.autopay_activated"} <= actions
    confirmed = _emails(enr, "confirmed")
    assert len(confirmed) == 1 and confirmed[0].context["card"] == "Visa ending 4242"
    reminders = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "payment_reminder",
                                                       OutboxMessage.status == "pending",
                                                       OutboxMessage.recipient_user_id == enr.participant_id))
    assert reminders and all(r.context["autopay_card"] == "Visa ending 4242" for r in reminders)
    assert not [r for r in reminders if r.context["which"] == "overdue"]
    from retreat.messaging import render

    mail = render.render_email("payment_reminder", reminders[0].context)
    assert "will be charged automatically on" in mail.subject
    assert "will be charged automatically to Visa ending 4242" in mail.text and "please pay" not in mail.text.lower()
    # the participant's data export carries the mandate and its consent
    from retreat.core import personal_data

    [payments_section] = [s for s in personal_data.sections() if s.name == "payments"]
    section = payments_section.build(enr.participant, ctx=None, now=now_utc())
    exported = section["automatic_payment_mandates"]
    assert exported[0]["card"] == "Visa ending 4242" and exported[0]["consent_text"] == m.consent_text


def test_the_job_charges_on_the_cohort_local_due_date_once_and_the_ledger_waits_for_the_webhook(db, client):
    enr, plan = ah.on_plan(3)
    ah.save_card(enr)
    tz = enr.cohort.timezone  # America/Denver: UTC-7 in winter, UTC-6 in summer
    first = plan[0]
    paid_before = ledger.paid(enr.id)
    # 23:00 the evening before, Denver time, is already the due date in UTC: nothing is charged yet
    assert autopay_charges.charge_due(ah.at(first.due_on - timedelta(days=1), 23, tz)) == []
    assert autopay_charges.charge_due(ah.at(first.due_on, 0, tz) - timedelta(minutes=1)) == []
    outcomes = autopay_charges.charge_due(ah.at(first.due_on, 0, tz) + timedelta(minutes=1))
    assert [o.status for o in outcomes] == ["succeeded"]
    attempt = db.session.get(AutopayAttempt, outcomes[0].attempt_id)
    assert attempt.idempotency_key == f"autopay-{first.id}-attempt-1" and attempt.charge_on == first.due_on
    payment = attempt.payment
    assert payment.idempotency_key == attempt.idempotency_key and payment.amount_minor == 30000
    [pi] = ah.intents_for([attempt.id])
    assert pi["status"] == "succeeded" and pi["amount"] == 30000 and pi["id"] == payment.stripe_payment_intent_id
    assert ledger.paid(enr.id) == paid_before  # only the webhook writes the ledger
    # the job again, the same day and the next: nothing more is charged
    for later in (timedelta(hours=3), timedelta(days=1)):
        assert autopay_charges.charge_due(ah.at(first.due_on, 1, tz) + later) == []
    assert len(ah.intents_for([a.id for a in _attempts(enr)])) == 1
    r = ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"], "object": "payment_intent"})
    assert r.status_code == 200
    db.session.expire_all()
    assert ledger.paid(enr.id) == paid_before + 30000
    assert db.session.get(Payment, payment.id).status == PaymentStatus.SUCCEEDED
    receipts = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "receipt_charge",
                                                      OutboxMessage.recipient_user_id == enr.participant_id))
    assert any(m.context["amount"] == "$300.00" for m in receipts)
    # the second installment on its own date
    outcomes = autopay_charges.charge_due(ah.at(plan[1].due_on, 9, tz))
    assert [o.status for o in outcomes] == ["succeeded"]
    assert db.session.get(AutopayAttempt, outcomes[0].attempt_id).installment_id == plan[1].id


def test_a_declined_card_is_retried_after_1_3_and_5_days_then_finance_sees_it(db):
    enr, plan = ah.on_plan(2)
    m = ah.save_card(enr, ah.DECLINED)
    tz, due = enr.cohort.timezone, plan[0].due_on
    assert [o.status for o in autopay_charges.charge_due(ah.at(due, 9, tz))] == ["failed"]
    failed = _emails(enr, "failed")
    assert len(failed) == 1 and failed[0].context["retry_on"] == human_date(due + timedelta(days=1))
    assert failed[0].context["url"].endswith(f"/me/payments/{enr.id}")
    assert autopay_charges.charge_due(ah.at(due, 18, tz)) == []  # the same day: no retry yet
    for day, expected in ((1, "failed"), (2, None), (3, "failed"), (4, None), (5, "failed"), (6, None), (9, None)):
        got = [o.status for o in autopay_charges.charge_due(ah.at(due + timedelta(days=day), 9, tz))]
        assert got == ([expected] if expected else []), (day, got)
    attempts = _attempts(enr)
    assert [a.attempt_no for a in attempts] == [1, 2, 3, 4]
    assert [a.retry_on for a in attempts] == [due + timedelta(days=d) for d in (1, 3, 5)] + [None]
    assert len(_emails(enr, "failed")) == 3 and len(_emails(enr, "final")) == 1
    assert {a.payment.status for a in attempts} == {"failed"}
    flagged = autopay_charges.exhausted()
    assert flagged.total == 1 and flagged.items[0].id == attempts[-1].id
    assert db.session.get(AutopayMandate, m.id).status == MandateStatus.ACTIVE  # the card stays for what follows
    assert ledger.paid(enr.id) == 10000


def test_a_card_that_needs_authentication_gets_the_confirm_link_at_once(db, client):
    enr, plan = ah.on_plan(2)
    m = ah.save_card(enr)
    # the bank asks for authentication on a later off-session charge (a 3155 card; localstripe's
    # SetupIntent cannot be authenticated, so that card is attached to the customer directly)
    pm = gateway.create_test_payment_method(ah.NEEDS_AUTH)
    gateway.attach_payment_method(pm, m.stripe_customer_id)
    m.stripe_payment_method_id = pm
    db.session.commit()
    tz = enr.cohort.timezone
    [o] = autopay_charges.charge_due(ah.at(plan[0].due_on, 9, tz))
    assert o.status == AttemptStatus.REQUIRES_ACTION
    attempt = db.session.get(AutopayAttempt, o.attempt_id)
    [mail] = _emails(enr, "action")
    assert mail.context["confirm_url"].endswith(f"/me/payments/{enr.id}/checkout/{attempt.payment_id}")
    assert attempt.payment.status == "pending" and attempt.payment.stripe_payment_intent_id
    # no retry while the person is asked to confirm
    assert autopay_charges.charge_due(ah.at(plan[0].due_on + timedelta(days=2), 9, tz)) == []
    c = ph.signed_in(client.application, enr.participant)
    page = c.get(f"/me/payments/{enr.id}/checkout/{attempt.payment_id}")
    assert page.status_code == 200
    assert f'data-client-secret="{attempt.payment.stripe_payment_intent_id}_secret_' in page.get_data(as_text=True)


def test_a_card_removed_in_stripe_fails_cleanly_marks_the_mandate_and_asks_for_a_card(db):
    enr, plan = ah.on_plan(2)
    m = ah.save_card(enr)
    gateway.detach_payment_method(m.stripe_payment_method_id)
    tz = enr.cohort.timezone
    [o] = autopay_charges.charge_due(ah.at(plan[0].due_on, 9, tz))
    assert o.status == AttemptStatus.NO_CARD
    assert db.session.get(AutopayMandate, m.id).status == MandateStatus.UNUSABLE
    assert ah.intents_for([o.attempt_id]) == []
    assert len(_emails(enr, "card_missing")) == 1
    assert autopay_charges.charge_due(ah.at(plan[0].due_on + timedelta(days=1), 9, tz)) == []
    # back to "please pay" reminders for what is left
    pending = db_scalars(select(OutboxMessage).where(OutboxMessage.template == "payment_reminder",
                                                     OutboxMessage.status == "pending",
                                                     OutboxMessage.recipient_user_id == enr.participant_id))
    assert pending and all(not r.context.get("autopay_card") for r in pending)


def test_switching_to_paying_by_hand_and_replacing_the_card(db):
    enr, plan = ah.on_plan(3)
    first = ah.save_card(enr)
    second = ah.save_card(enr, "5555555555554444")
    db.session.expire_all()
    assert db.session.get(AutopayMandate, first.id).status == MandateStatus.REVOKED
    assert db.session.get(AutopayMandate, first.id).revoked_reason == "replaced by a new card"
    assert (second.status, second.card_last4) == ("active", "4444")
    assert autopay.revoke(enr, now=now_utc(), actor=enr.participant) is True
    assert autopay.revoke(enr, now=now_utc(), actor=enr.participant) is False  # a second click: no-op
    db.session.expire_all()
    assert db.session.get(AutopayMandate, second.id).status == MandateStatus.REVOKED
    assert len(_emails(enr, "revoked")) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "payments.autopay_revoked", AuditEvent.object_id == str(second.id))) == 1
    assert autopay_charges.charge_due(ah.at(plan[0].due_on, 9, enr.cohort.timezone)) == []


def test_paying_by_hand_while_an_automatic_charge_is_under_way_makes_no_second_intent(db):
    from retreat.core.errors import Conflict
    from retreat.payments import checkout

    enr, plan = ah.on_plan(2)
    ah.save_card(enr)
    attempt_id = autopay_charges.claim(autopay.active_mandate(enr.id).id,
                                       now=ah.at(plan[0].due_on, 9, enr.cohort.timezone))
    db.session.commit()
    attempt = db.session.get(AutopayAttempt, attempt_id)
    start = checkout.begin(enr, "installment", now=now_utc(), actor=enr.participant)
    assert start.payment.id == attempt.payment_id  # the same open attempt, not a new one
    db.session.commit()
    with pytest.raises(Conflict, match="automatic charge of this installment is under way"):
        checkout.ensure_intent(start.payment.id)
    assert autopay_charges.charge(attempt_id, now=now_utc()).status == "succeeded"
    assert len(ah.intents_for([attempt_id])) == 1


def test_a_new_card_after_the_last_retry_is_charged_at_once(db):
    enr, plan = ah.on_plan(2)
    ah.save_card(enr, ah.DECLINED)
    tz, due = enr.cohort.timezone, plan[0].due_on
    for day in (0, 1, 3, 5):
        autopay_charges.charge_due(ah.at(due + timedelta(days=day), 9, tz))
    assert autopay_charges.exhausted().total == 1
    ah.save_card(enr)  # the person replaces the card from the link in the email
    [o] = autopay_charges.charge_due(ah.at(due + timedelta(days=7), 9, tz))
    assert o.status == "succeeded"
    attempt = db.session.get(AutopayAttempt, o.attempt_id)
    assert attempt.attempt_no == 5 and attempt.idempotency_key == f"autopay-{plan[0].id}-attempt-5"
    assert autopay_charges.charge_due(ah.at(due + timedelta(days=8), 9, tz)) == []
    assert autopay_charges.exhausted().total == 0  # recovered: nothing left for finance


def test_a_paid_installment_gets_no_reminder_whichever_variant_was_queued(db, client):
    """Saving a card re-queues the reminders as "charged automatically" variants (other keys);
    paying the installment must cancel those too, not only the plain ones."""
    enr, plan = ah.on_plan(3)
    ah.save_card(enr)
    tz = enr.cohort.timezone
    first = plan[0]

    def pending(inst):
        return db_scalars(select(OutboxMessage.dedupe_key).where(
            OutboxMessage.template == "payment_reminder", OutboxMessage.status == "pending",
            OutboxMessage.dedupe_key.startswith(f"installment-{inst.id}-")))

    assert pending(first) and all("-auto" in k for k in pending(first))
    assert autopay_charges.charge_due(ah.at(first.due_on, 9, tz) - timedelta(days=8)) == []  # not a week early
    [outcome] = autopay_charges.charge_due(ah.at(first.due_on, 9, tz))
    pi = db.session.get(AutopayAttempt, outcome.attempt_id).payment.stripe_payment_intent_id
    assert ph.deliver(client, "payment_intent.succeeded", {"id": pi, "object": "payment_intent"}).status_code == 200
    db.session.expire_all()
    assert pending(first) == []  # paid: its automatic-variant reminders are cancelled
    assert pending(plan[1])  # the next installment's still stand
