"""Automatic installments, the mandate: a participant saves a card (a Stripe SetupIntent) and
consents, in words that name the card, each amount and each date, to its being charged on the
installments' due dates. They can switch to paying by hand, or replace the card, at any time.

Like ``checkout``, the Stripe calls sit between short transactions: ``start`` (a pending mandate,
reused on a double submit), ``ensure_setup_intent`` (commits; customer + SetupIntent),
``complete`` (reads the SetupIntent back, then activates the mandate once under the enrollment's
lock). The charging itself is ``retreat.payments.autopay_charges``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts import seats
from retreat.cohorts.models import Enrollment, SeatState
from retreat.core import locking, urls
from retreat.core.errors import Conflict, NotFound
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.messaging.models import OutboxMessage
from retreat.money import format_money
from retreat.payments import checkout, gateway
from retreat.payments.autopay_models import CONSENT_VERSION, AutopayMandate, MandateStatus
from retreat.timeutil import human_date
from retreat.timeutil import zone as tz_zone

LIVE = (MandateStatus.PENDING.value, MandateStatus.ACTIVE.value)


def active_mandate(enr_id: int) -> AutopayMandate | None:
    return db.session.scalar(select(AutopayMandate).where(
        AutopayMandate.enrollment_id == enr_id, AutopayMandate.status == MandateStatus.ACTIVE.value)
        .order_by(AutopayMandate.id.desc()))


def latest_mandate(enr_id: int) -> AutopayMandate | None:
    return db.session.scalar(select(AutopayMandate).where(AutopayMandate.enrollment_id == enr_id)
                             .order_by(AutopayMandate.id.desc()))


def schedule(enr: Enrollment) -> list[tuple[date, int, str]]:
    """The open installments a mandate would charge: (due date, amount left, currency)."""
    return [(r["installment"].due_on, r["remaining"], r["installment"].currency)
            for r in checkout.installment_progress(enr) if r["remaining"] > 0]


def consent_text(enr: Enrollment, card_label: str = "the card you save below") -> str:
    """What the person agrees to, word for word (stored with the mandate once the card is saved)."""
    practice = current_app.config.get("PRACTICE_NAME") or "the practice"
    parts = [f"{format_money(amount, cur)} on {human_date(due)}" for due, amount, cur in schedule(enr)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1] if parts else "nothing"
    cohort = enr.cohort
    return (f"You authorise {practice} to charge {card_label} {listed} for {cohort.retreat.title} — "
            f"{cohort.title}, in the retreat's time zone ({cohort.timezone}). If a charge is declined it is "
            "retried 1, 3 and 5 days later, and we email you each time. You can switch to paying by hand "
            "or replace the card at any time from your payments page.")


def start(enr: Enrollment, *, now: datetime, actor: User | None) -> AutopayMandate:
    """A pending mandate for ``enr`` (the same one on a double submit). The caller commits."""
    enr = seats.lock_enrollment(enr.id)
    if enr.seat != SeatState.CONFIRMED or not enr.is_active:
        raise Conflict("Automatic payments can be set up once the deposit is paid.")
    if not schedule(enr):
        raise Conflict("There is no installment left to charge automatically.")
    pending = db.session.scalar(select(AutopayMandate).where(
        AutopayMandate.enrollment_id == enr.id, AutopayMandate.status == MandateStatus.PENDING.value)
        .order_by(AutopayMandate.id.desc()))
    if pending is not None:
        return pending
    customer = db.session.scalar(select(AutopayMandate.stripe_customer_id).join(
        Enrollment, Enrollment.id == AutopayMandate.enrollment_id).where(
        Enrollment.participant_id == enr.participant_id, AutopayMandate.stripe_customer_id.is_not(None))
        .order_by(AutopayMandate.id.desc()).limit(1))
    mandate = AutopayMandate(enrollment_id=enr.id, status=MandateStatus.PENDING.value, stripe_customer_id=customer,
                             consent_version=CONSENT_VERSION, consent_text="", created_at=now, updated_at=now)
    db.session.add(mandate)
    db.session.flush()
    audit.record("payments.autopay_started", actor=actor, object_type="autopay_mandate", object_id=mandate.id,
                 details={"enrollment": enr.id}, now=now)
    return mandate


def ensure_setup_intent(mandate_id: int) -> dict:
    """The SetupIntent of a pending mandate (created once, with a customer). Commits."""
    mandate = db.session.get(AutopayMandate, mandate_id)
    if mandate is None:
        raise NotFound("No such card setup.")
    if mandate.stripe_setup_intent_id:
        si_id = mandate.stripe_setup_intent_id
        db.session.commit()
        return gateway.retrieve_setup_intent(si_id)
    person = mandate.enrollment.participant
    customer = mandate.stripe_customer_id
    meta = {"enrollment": str(mandate.enrollment_id), "cohort": str(mandate.enrollment.cohort_id),
            "participant": str(person.id), "autopay_mandate": str(mandate.id)}
    email, name = person.email, person.name
    db.session.commit()  # nothing is locked while Stripe is called
    if not customer:
        customer = gateway.create_customer(email=email, name=name, idempotency_key=f"autopay-customer-{mandate_id}",
                                           metadata={"participant": meta["participant"]})
    si = gateway.create_setup_intent(customer=customer, idempotency_key=f"autopay-setup-{mandate_id}", metadata=meta)
    mandate = locking.lock(AutopayMandate, mandate_id)
    if mandate.stripe_setup_intent_id is None:
        mandate.stripe_customer_id = customer
        mandate.stripe_setup_intent_id = si["id"]
        db.session.commit()
        return si
    other = mandate.stripe_setup_intent_id  # a concurrent request attached its own first
    db.session.commit()
    return gateway.retrieve_setup_intent(other)


def complete(mandate_id: int, *, now: datetime, actor: User | None) -> AutopayMandate:
    """Read the SetupIntent back from Stripe and, once it succeeded, activate the mandate (once):
    card brand/last4/expiry and the consent text naming that card are stored, an earlier mandate of
    the enrollment is revoked, the reminders say the installments will be charged automatically,
    and a confirmation email is queued. Call with no transaction open; the caller commits."""
    mandate = db.session.get(AutopayMandate, mandate_id)
    if mandate is None:
        raise NotFound("No such card setup.")
    if mandate.status != MandateStatus.PENDING:
        return mandate
    if not mandate.stripe_setup_intent_id:
        raise Conflict("The card was not saved yet. Enter the card details and press the button again.")
    si_id, customer = mandate.stripe_setup_intent_id, mandate.stripe_customer_id
    db.session.commit()
    si = gateway.retrieve_setup_intent(si_id)
    if si["status"] != "succeeded" or not si["payment_method"]:
        raise Conflict("The card was not saved yet. Enter the card details and press the button again.")
    card = gateway.card_details(si["payment_method"])
    if card["customer"] is None:
        gateway.attach_payment_method(card["id"], customer)
    enr = seats.lock_enrollment(mandate.enrollment_id)
    mandate = locking.lock(AutopayMandate, mandate_id)
    if mandate.status != MandateStatus.PENDING:
        return mandate  # a double submit activated it already
    for old in db.session.scalars(select(AutopayMandate).where(
            AutopayMandate.enrollment_id == enr.id, AutopayMandate.id != mandate.id,
            AutopayMandate.status == MandateStatus.ACTIVE.value)):
        _end(old, MandateStatus.REVOKED, "replaced by a new card", now=now, actor=actor)
    mandate.stripe_payment_method_id = card["id"]
    mandate.card_brand, mandate.card_last4 = card["brand"][:40], card["last4"][:4]
    mandate.card_exp_month, mandate.card_exp_year = card["exp_month"], card["exp_year"]
    mandate.consent_text = consent_text(enr, mandate.card_label)
    mandate.status = MandateStatus.ACTIVE.value
    mandate.activated_at = now
    audit.record("payments.autopay_activated", actor=actor, object_type="autopay_mandate", object_id=mandate.id,
                 details={"enrollment": enr.id, "card": mandate.card_label, "consent_version": mandate.consent_version},
                 now=now)
    requeue_reminders(enr, mandate, now=now)
    notify(enr, "confirmed", mandate=mandate, now=now, key=f"autopay-{mandate.id}-confirmed")
    return mandate


def revoke(enr: Enrollment, *, now: datetime, actor: User | None, reason: str = "switched to paying by hand",
           tell: bool = True, requeue: bool = True, include_pending: bool = True) -> bool:
    """Stop charging automatically (the pending setup too). Repeating it is a no-op. Caller commits.
    With ``tell`` the person gets the confirmation email; with ``requeue`` "please pay" reminders
    replace the automatic ones (without: they are only cancelled, a new plan queues its own)."""
    enr = seats.lock_enrollment(enr.id)
    live = list(db.session.scalars(select(AutopayMandate).where(
        AutopayMandate.enrollment_id == enr.id,
        AutopayMandate.status.in_(LIVE if include_pending else (MandateStatus.ACTIVE.value,)))))
    if not live:
        return False
    was_active = [m for m in live if m.status == MandateStatus.ACTIVE]
    for m in live:
        _end(m, MandateStatus.REVOKED, reason, now=now, actor=actor)
    if was_active:
        requeue_reminders(enr, None, now=now, tag=f"hand{was_active[-1].id}", queue=requeue)
    if was_active and tell:
        notify(enr, "revoked", mandate=was_active[-1], now=now, key=f"autopay-{was_active[-1].id}-revoked")
    return True


def mark_unusable(mandate: AutopayMandate, reason: str, *, now: datetime) -> None:
    """The saved card is gone (removed in Stripe): nothing more is charged; the person is told."""
    if mandate.status != MandateStatus.ACTIVE:
        return
    _end(mandate, MandateStatus.UNUSABLE, reason, now=now, actor=None)
    enr = mandate.enrollment
    requeue_reminders(enr, None, now=now, tag=f"hand{mandate.id}")
    notify(enr, "card_missing", mandate=mandate, now=now, key=f"autopay-{mandate.id}-card-missing")


def _end(m: AutopayMandate, status: MandateStatus, reason: str, *, now: datetime, actor: User | None) -> None:
    m.status = status.value
    m.revoked_at = now
    m.revoked_reason = reason[:200]
    audit.record(f"payments.autopay_{status.value}", actor=actor, object_type="autopay_mandate", object_id=m.id,
                 details={"enrollment": m.enrollment_id, "reason": reason}, now=now)


# --------------------------------------------------------------------------------------------
# Emails
# --------------------------------------------------------------------------------------------


def payments_url(enr: Enrollment) -> str:
    return f"{urls.base_url()}/me/payments/{enr.id}"


def requeue_reminders(enr: Enrollment, mandate: AutopayMandate | None, *, now: datetime, tag: str = "",
                      queue: bool = True) -> None:
    """Replace the reminders of the open installments: "will be charged automatically to <card>"
    with a mandate (no overdue reminder: a failed charge has its own email), "please pay" without."""
    rows = [r for r in checkout.installment_progress(enr) if r["remaining"] > 0]
    total = len(checkout.current_installments(enr))
    person, zone = enr.participant, tz_zone(enr.participant.tz)
    for row in rows:
        inst = row["installment"]
        prefix = f"installment-{inst.id}-"
        outbox.cancel(dedupe_keys=[m for m in db.session.scalars(select(OutboxMessage.dedupe_key).where(
            OutboxMessage.dedupe_key.like(prefix + "%")))], now=now)
        for name, days in checkout.REMINDERS if queue else ():
            if mandate is not None and name == "overdue":
                continue
            due_at = datetime.combine(inst.due_on + timedelta(days=days), time(9, 0), zone)
            if due_at <= now:
                continue
            suffix = f"auto{mandate.id}" if mandate is not None else tag
            outbox.enqueue(template="payment_reminder", dedupe_key=f"{prefix}{name}-{suffix}", to_user=person,
                           group_key=f"enrollment:{enr.id}", due_at=due_at, now=now,
                           context={"participant_name": person.name, "cohort_title": enr.cohort.title,
                                    "retreat_title": enr.cohort.retreat.title, "which": name,
                                    "seq": inst.seq, "count": total,
                                    "amount": format_money(row["remaining"], inst.currency),
                                    "due_on": human_date(inst.due_on),
                                    "autopay_card": mandate.card_label if mandate is not None else "",
                                    "url": payments_url(enr)})


def notify(enr: Enrollment, which: str, *, mandate: AutopayMandate, now: datetime, key: str, **extra) -> None:
    """One email about automatic payments (``which``: confirmed, revoked, failed, final, action,
    card_missing); ``key`` makes it once per event."""
    person = enr.participant
    lines = [f"{format_money(a, c)} on {human_date(d)}" for d, a, c in schedule(enr)]
    outbox.enqueue(template="autopay_notice", dedupe_key=key, to_user=person, group_key=f"enrollment:{enr.id}",
                   now=now, context={"participant_name": person.name, "which": which,
                                     "retreat_title": enr.cohort.retreat.title, "cohort_title": enr.cohort.title,
                                     "card": mandate.card_label, "schedule": lines, "url": payments_url(enr),
                                     **{k: str(v) for k, v in extra.items()}})
