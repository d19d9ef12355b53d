"""Paying: deposit (with a seat hold), balance in full, or a plan of up to 6 installments.

Flow of one payment, in three short transactions so that no database lock is held while Stripe is
called (Stripe calls happen between them, with no transaction open):

1. ``begin`` (locks, checks the amount against the server's price, takes the seat hold for a
   deposit, writes a pending ``Payment`` with the idempotency key ``<kind>-<enrollment>-<n>``);
2. ``ensure_intent`` creates (or re-reads) the PaymentIntent with that key and the metadata;
3. ``sync_payment_intent`` applies what Stripe says (called by the webhook and the return page):
   a charge lands in the ledger once (unique per PaymentIntent), the seat is confirmed, receipts
   and reminders are queued; a failure releases the hold and says why.

Functions named ``*_and_commit`` or documented as "commits" end their transaction themselves,
because they sit on the Stripe call boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts import enrollment as enrollment_svc
from retreat.cohorts import seats
from retreat.cohorts.models import Enrollment, EnrollmentStatus, SeatState
from retreat.core import locking, urls
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.money import format_money
from retreat.payments import balances, gateway, ledger, pricing, receipts, refunds, screening, webhook_events
from retreat.payments.attempts import find_payment_for_intent, lock_payment
from retreat.payments.models import (
    Installment,
    LedgerType,
    Payment,
    PaymentKind,
    PaymentStatus,
    RefundKind,
)
from retreat.timeutil import human_date, local_date
from retreat.timeutil import zone as tz_zone

MAX_INSTALLMENTS = 6
REMINDERS = (("due7", -7), ("due1", -1), ("overdue", 1))  # days relative to the due date


@dataclass
class Start:
    """What ``begin`` decided: a payment to make, or why not (e.g. put on the waitlist)."""

    payment: Payment | None
    message: str = ""
    outcome: str = "pay"  # pay | waitlisted | confirmed


@dataclass
class SyncResult:
    payment: Payment | None
    changed: bool = False
    refunds_to_submit: list[int] = field(default_factory=list)
    message: str = ""


# --------------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------------


def current_installments(enr: Enrollment) -> list[Installment]:
    return list(db.session.scalars(select(Installment).where(
        Installment.enrollment_id == enr.id, Installment.is_current.is_(True)).order_by(Installment.seq)))


def installment_progress(enr: Enrollment, q: pricing.Quote | None = None) -> list[dict]:
    """Each current installment with how much of it is paid, derived from the ledger: money
    beyond the deposit covers installments in order."""
    q = q or pricing.quote(enr)
    toward_balance = max(0, q.paid - min(q.deposit, q.total))
    rows = []
    for inst in current_installments(enr):
        covered = min(inst.amount_minor, toward_balance)
        toward_balance -= covered
        rows.append({"installment": inst, "paid": covered, "remaining": inst.amount_minor - covered,
                     "is_paid": covered >= inst.amount_minor})
    return rows


def amount_due(enr: Enrollment, kind: PaymentKind, q: pricing.Quote | None = None) -> int:
    if kind == PaymentKind.SCREENING_FEE:
        return screening.amount_due(enr)
    q = q or pricing.quote(enr)
    if kind == PaymentKind.DEPOSIT:
        return q.deposit_outstanding if enr.seat != SeatState.CONFIRMED else 0
    if kind == PaymentKind.BALANCE:
        return max(0, q.balance)
    for row in installment_progress(enr, q):
        if row["remaining"] > 0:
            return min(row["remaining"], max(0, q.balance))
    return max(0, q.balance)


def _check_expected(amount: int, expected: str | int | None, currency: str) -> None:
    if expected is None or expected == "":
        return
    try:
        value = int(expected)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("The amount is not a whole number of minor units.", field="amount") from exc
    if value != amount:
        raise ValidationFailed(
            f"The amount to pay is now {format_money(amount, currency)}, not {format_money(value, currency)}. "
            "Nothing was charged; please check the new amount and pay again.", field="amount")


# --------------------------------------------------------------------------------------------
# 1. begin (in the caller's transaction; the caller commits)
# --------------------------------------------------------------------------------------------


def begin(enr: Enrollment, kind: PaymentKind | str, *, now: datetime, actor: User | None,
          expected_amount: str | int | None = None) -> Start:
    kind = PaymentKind(kind)
    q = pricing.quote(enr)
    if kind == PaymentKind.SCREENING_FEE:  # with the application (payments.screening)
        screening.require_payable(enr)
        amount = screening.amount_due(enr)
        _check_expected(amount, expected_amount, q.currency)
    elif kind == PaymentKind.DEPOSIT:
        if enr.seat == SeatState.CONFIRMED:
            return Start(None, "Your deposit is paid and your seat is confirmed.", "confirmed")
        amount = amount_due(enr, kind, q)
        _check_expected(amount, expected_amount, q.currency)  # before anything changes
        if amount <= 0:
            raise Conflict("There is no deposit to pay.")
        outcome = seats.take_hold(enr, now=now, actor=actor)
        if outcome.result == "waitlisted":
            return Start(None, outcome.message, "waitlisted")
        if outcome.result == "confirmed":
            return Start(None, outcome.message, "confirmed")
    else:
        if enr.seat != SeatState.CONFIRMED:
            raise Conflict("Pay the deposit first: the balance is due once your seat is confirmed.")
        if not enr.is_active:
            raise Conflict("This enrollment is closed, so nothing can be paid.")
        amount = amount_due(enr, kind, q)
        _check_expected(amount, expected_amount, q.currency)
        if amount <= 0:
            raise Conflict("Nothing is left to pay.")
    enr = seats.lock_enrollment(enr.id)
    pending = db.session.scalars(select(Payment).where(
        Payment.enrollment_id == enr.id, Payment.kind == kind.value,
        Payment.status == PaymentStatus.PENDING.value).order_by(Payment.id.desc())).first()
    if pending is not None and pending.amount_minor == amount and pending.currency == q.currency:
        return Start(pending)  # a double click or a reload: the same attempt
    if pending is not None:  # the price changed since: that attempt is void
        pending.status = PaymentStatus.CANCELED.value
        pending.failure_message = "Replaced by a new attempt for a different amount."
    n = int(db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.enrollment_id == enr.id, Payment.kind == kind.value)) or 0) + 1
    payment = Payment(enrollment_id=enr.id, kind=kind.value, attempt=n, amount_minor=amount,
                      currency=q.currency, status=PaymentStatus.PENDING.value,
                      idempotency_key=f"{kind.value}-{enr.id}-{n}", created_at=now, updated_at=now)
    db.session.add(payment)
    db.session.flush()
    audit.record("payments.started", actor=actor, object_type="payment", object_id=payment.id,
                 details={"enrollment": enr.id, "kind": kind.value, "amount_minor": amount,
                          "currency": q.currency}, now=now)
    return Start(payment)


# --------------------------------------------------------------------------------------------
# 2. the PaymentIntent (commits: no transaction is open while Stripe is called)
# --------------------------------------------------------------------------------------------


def metadata_for(payment: Payment) -> dict[str, str]:
    enr = payment.enrollment
    return {"enrollment": str(enr.id), "cohort": str(enr.cohort_id), "participant": str(enr.participant_id),
            "kind": payment.kind, "payment": str(payment.id)}


def ensure_intent(payment_id: int) -> dict:
    """Create the PaymentIntent of a pending payment, or re-read the one it has. Commits."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    pi_id = payment.stripe_payment_intent_id
    if pi_id is None and payment.idempotency_key.startswith("autopay-"):
        # An automatic charge of this installment is being made right now (payments.autopay_charges):
        # a second PaymentIntent for it could charge the person twice.
        raise Conflict("An automatic charge of this installment is under way. Refresh the page in a minute.")
    params = {"amount_minor": payment.amount_minor, "currency": payment.currency,
              "idempotency_key": payment.idempotency_key, "metadata": metadata_for(payment)}
    db.session.commit()  # end the transaction: nothing is locked while Stripe is called
    if pi_id:
        return gateway.retrieve_payment_intent(pi_id)
    pi = gateway.create_payment_intent(**params)
    payment = locking.lock(Payment, payment_id)
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = pi["id"]
        db.session.commit()
        return pi
    other = payment.stripe_payment_intent_id  # a concurrent request attached its own first
    db.session.commit()
    return gateway.retrieve_payment_intent(other)


# --------------------------------------------------------------------------------------------
# 3. apply what Stripe says (caller's transaction)
# --------------------------------------------------------------------------------------------


def fetch_payment_intent(pi_id: str, *, best_effort_fee: bool = False) -> dict:
    """Re-read a PaymentIntent from Stripe (call with no transaction open). A succeeded one gets
    its charge's balance transaction attached as ``pi["balance_transaction"]`` (the Stripe fee).

    With ``best_effort_fee`` (the return page) a failure to read the fee leaves it out; the
    webhook path lets the ``GatewayError`` through so Stripe retries the event."""
    return attach_settlement(gateway.retrieve_payment_intent(pi_id), best_effort=best_effort_fee)


def attach_settlement(pi: dict, *, best_effort: bool = False) -> dict:
    if pi.get("status") != "succeeded" or not pi.get("latest_charge") or pi.get("balance_transaction"):
        return pi
    try:
        charge = gateway.retrieve_charge(pi["latest_charge"])
        if charge.get("balance_transaction"):
            pi["balance_transaction"] = gateway.retrieve_balance_transaction(charge["balance_transaction"])
    except gateway.GatewayError:
        if not best_effort:
            raise
    return pi


def _record_fee(payment: Payment, txn: dict | None, *, now: datetime) -> None:
    """The Stripe fee of a charge, keyed by its balance transaction id (``txn_...``): negative,
    not part of what the participant paid (``ledger.paid`` counts cash types only)."""
    if not txn or not int(txn.get("fee") or 0):
        return
    ledger.record(enrollment_id=payment.enrollment_id, entry_type=LedgerType.FEE, amount_minor=-int(txn["fee"]),
                  currency=txn.get("currency") or payment.currency, object_id=txn["id"], payment_id=payment.id,
                  now=now, memo="Stripe fee")


def sync_payment_intent(pi: dict, *, now: datetime) -> SyncResult:
    """Bring our records in line with a PaymentIntent fetched from Stripe. Idempotent."""
    payment = find_payment_for_intent(pi)
    if payment is None:
        return SyncResult(None, message="not ours")
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = pi["id"]
    status = pi["status"]
    if status == "succeeded":
        return _succeeded(payment, pi, now=now)
    if status in ("requires_payment_method", "canceled") and (pi.get("failure_message") or status == "canceled"):
        return _failed(payment, pi, now=now)
    return SyncResult(payment, message=status)


def _succeeded(payment: Payment, pi: dict, *, now: datetime) -> SyncResult:
    result = SyncResult(payment)
    enr = payment.enrollment
    amount, currency = int(pi["amount"]), pi["currency"] or payment.currency
    entry, created = ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=amount,
                                   currency=currency, object_id=pi["id"], payment_id=payment.id, now=now,
                                   memo=f"{payment.kind} payment")
    _record_fee(payment, pi.get("balance_transaction"), now=now)
    if payment.status != PaymentStatus.SUCCEEDED:
        payment.status = PaymentStatus.SUCCEEDED.value
        payment.succeeded_at = now
        payment.failure_message = ""
        payment.updated_at = now
    if not created:
        return result
    result.changed = True
    if amount != payment.amount_minor or currency.upper() != payment.currency:
        audit.record("payments.amount_mismatch", object_type="payment", object_id=payment.id, now=now,
                     details={"expected": payment.amount_minor, "received": amount, "currency": currency})
    if payment.kind == PaymentKind.DEPOSIT:
        try:
            enrollment_svc.confirm_seat(enr, now=now, actor=None, reason="Deposit paid")
        except Conflict as exc:
            # Paid after the hold expired and the seat went to someone else: refund in full.
            refund = refunds.new_refund(payment, amount, RefundKind.SEAT_LOST,
                                        f"No seat could be confirmed: {exc.message}", now=now, actor=None)
            result.refunds_to_submit.append(refund.id)
            result.message = exc.message
            audit.record("payments.seat_lost", object_type="payment", object_id=payment.id, now=now,
                         details={"enrollment": enr.id, "reason": exc.message})
            receipts.charge(payment, amount, now=now)
            webhook_events.payment_succeeded(payment, amount, now=now)
            return result
        _default_plan(enr, now=now)
    elif payment.kind == PaymentKind.SCREENING_FEE:
        screening.fee_paid(payment, now=now)
    after = pricing.quote(enr)
    if after.balance <= 0 and enr.status == EnrollmentStatus.DEPOSIT_PAID:
        enrollment_svc.mark_balance_paid(enr, now=now, actor=None)
    _cancel_covered_reminders(enr, after)
    receipts.charge(payment, amount, now=now)
    webhook_events.payment_succeeded(payment, amount, now=now)
    return result


def _failed(payment: Payment, pi: dict, *, now: datetime) -> SyncResult:
    if payment.status != PaymentStatus.PENDING:
        return SyncResult(payment)
    payment.status = (PaymentStatus.CANCELED if pi["status"] == "canceled" else PaymentStatus.FAILED).value
    payment.failure_message = (pi.get("failure_message") or "The payment was canceled.")[:500]
    payment.updated_at = now
    if payment.kind == PaymentKind.DEPOSIT:
        seats.release_hold(payment.enrollment, now=now, actor=None,
                           reason=f"Deposit payment failed: {payment.failure_message}")
    audit.record("payments.failed", object_type="payment", object_id=payment.id, now=now,
                 details={"reason": payment.failure_message})
    return SyncResult(payment, changed=True, message=payment.failure_message)


def abandon(payment: Payment, *, now: datetime, actor: User | None) -> bool:
    """The participant gave up on a deposit: release the hold (the PaymentIntent is left unpaid)."""
    payment = lock_payment(payment.id)
    if payment.status != PaymentStatus.PENDING:
        return False
    payment.status = PaymentStatus.CANCELED.value
    payment.failure_message = "Abandoned by the participant."
    if payment.kind == PaymentKind.DEPOSIT:
        seats.release_hold(payment.enrollment, now=now, actor=actor, reason="Deposit payment abandoned")
    return True


# --------------------------------------------------------------------------------------------
# Installment plans and reminders
# --------------------------------------------------------------------------------------------


def _reminder_keys(inst: Installment) -> list[str]:
    """Every reminder key of this installment: the plain ones and the variants automatic payments
    queue (``installment-<id>-<name>-auto<mandate>`` / ``-hand<mandate>``, payments.autopay), so a
    paid or replaced installment is never reminded again whichever variant is pending."""
    prefix = f"installment-{inst.id}-"
    variants = db.session.scalars(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.dedupe_key.startswith(prefix, autoescape=True),
        OutboxMessage.status == OutboxStatus.PENDING))
    return sorted({*(f"{prefix}{name}" for name, _ in REMINDERS), *variants})


def _default_plan(enr: Enrollment, *, now: datetime) -> None:
    """After the deposit: the balance is one payment due on the cohort's balance date."""
    if current_installments(enr):
        return
    q = pricing.quote(enr)
    if q.balance > 0 and enr.cohort.balance_due_on:
        _write_plan(enr, [(enr.cohort.balance_due_on, q.balance)], now=now)


def plan_schedule(balance: int, count: int, *, today: date, due_on: date) -> list[tuple[date, int]]:
    """Split ``balance`` into ``count`` whole-minor-unit parts (the first ones take the remainder)
    with due dates evenly spaced up to ``due_on``."""
    if not 1 <= count <= MAX_INSTALLMENTS:
        raise ValidationFailed(f"Choose between 1 and {MAX_INSTALLMENTS} installments.", field="count")
    if count > balance:
        raise ValidationFailed("The balance is too small for that many installments.", field="count")
    base, rest = divmod(balance, count)
    span = max(0, (due_on - today).days)
    rows = []
    for i in range(count):
        due = today + timedelta(days=span * (i + 1) // count) if count > 1 else due_on
        rows.append((max(due, today), base + (1 if i < rest else 0)))
    rows[-1] = (due_on if due_on >= today else today, rows[-1][1])
    return rows


def choose_plan(enr: Enrollment, count: int, *, now: datetime, actor: User | None) -> list[Installment]:
    """Pay the remaining balance in ``count`` installments (1 = in full by the balance date)."""
    enr = seats.lock_enrollment(enr.id)
    if enr.seat != SeatState.CONFIRMED or not enr.is_active:
        raise Conflict("A payment plan can be chosen once the deposit is paid.")
    q = pricing.quote(enr)
    if q.balance <= 0:
        raise Conflict("Nothing is left to pay.")
    today = local_date(now, enr.cohort.timezone)
    due_on = balances.balance_due_on(enr.cohort)
    rows = plan_schedule(q.balance, int(count), today=today, due_on=max(due_on, today))
    for old in current_installments(enr):
        old.is_current = False
        outbox.cancel(dedupe_keys=_reminder_keys(old), now=now)
    plan = _write_plan(enr, rows, now=now)
    audit.record("payments.plan_chosen", actor=actor, object_type="enrollment", object_id=enr.id,
                 details={"installments": count}, now=now)
    return plan


def _write_plan(enr: Enrollment, rows: list[tuple[date, int]], *, now: datetime) -> list[Installment]:
    version = int(db.session.scalar(select(func.max(Installment.plan_version)).where(
        Installment.enrollment_id == enr.id)) or 0) + 1
    plan = []
    for seq, (due, amount) in enumerate(rows, start=1):
        inst = Installment(enrollment_id=enr.id, plan_version=version, is_current=True, seq=seq, due_on=due,
                           amount_minor=amount, currency=enr.cohort.currency.upper(), created_at=now, updated_at=now)
        db.session.add(inst)
        plan.append(inst)
    db.session.flush()
    for inst in plan:
        queue_reminders(enr, inst, now=now, total=len(plan))
    return plan


def queue_reminders(enr: Enrollment, inst: Installment, *, now: datetime, total: int) -> None:
    person = enr.participant
    zone = tz_zone(person.tz)
    for name, days in REMINDERS:
        due_at = datetime.combine(inst.due_on + timedelta(days=days), time(9, 0), zone)
        if due_at <= now and name != "overdue":
            continue
        outbox.enqueue(template="payment_reminder", dedupe_key=f"installment-{inst.id}-{name}", to_user=person,
                       group_key=f"enrollment:{enr.id}", due_at=max(due_at, now), now=now,
                       context={"participant_name": person.name, "cohort_title": enr.cohort.title,
                                "retreat_title": enr.cohort.retreat.title, "which": name,
                                "seq": inst.seq, "count": total,
                                "amount": format_money(inst.amount_minor, inst.currency),
                                "due_on": human_date(inst.due_on),
                                "url": f"{urls.base_url()}/me/payments/{enr.id}"})


def _cancel_covered_reminders(enr: Enrollment, q: pricing.Quote) -> None:
    for row in installment_progress(enr, q):
        if row["is_paid"]:
            outbox.cancel(dedupe_keys=_reminder_keys(row["installment"]))


def history(enr: Enrollment) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.enrollment_id == enr.id)
                                   .order_by(Payment.created_at.desc(), Payment.id.desc())))
