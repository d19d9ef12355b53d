"""Refunds: by the cohort's policy, automatically (not cleared, practice cancels) or by finance.

Two steps so that no lock is held while Stripe is called: ``plan`` (locks the enrollment, checks
the amount against what was paid, writes pending ``Refund`` rows with idempotency keys), then
``submit`` (commits, calls Stripe with no transaction open, records the result: a ledger entry
unique per Stripe refund id, a receipt). ``submit`` first looks for a Stripe refund carrying our
refund id in its metadata, so a retry after a crash never refunds twice (localstripe ignores
Idempotency-Key; real Stripe honours it as well).

Entry points for other features (each commits): ``refund_deposit_not_cleared``,
``refund_practice_cancelled``, ``refund_on_withdrawal``, ``issue_finance_refund``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts import seats
from retreat.cohorts.models import Enrollment
from retreat.core import jobs, locking, signals, urls
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.money import MoneyError, format_money, percent_of, to_minor
from retreat.payments import gateway, ledger, receipts, screening, webhook_events
from retreat.payments.attempts import find_payment_for_intent
from retreat.payments.models import (
    LedgerType,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from retreat.payments.refund_policy import policy_percent_for


def _pending(*where) -> int:
    """What refunds decided but not yet in the ledger take back (of the refunds ``where`` selects)."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.status == RefundStatus.PENDING.value, *where)) or 0)


def refundable(enr: Enrollment) -> int:
    """Paid (ledger) minus refunds decided but not yet in the ledger."""
    return ledger.paid(enr.id) - _pending(Refund.enrollment_id == enr.id)


def new_refund(payment: Payment, amount: int, kind: RefundKind, reason: str, *, now: datetime,
               actor: User | None, currency: str | None = None, stripe_refund_id: str | None = None) -> Refund:
    """A pending refund of ``amount`` on ``payment`` (flushed): the one place a ``Refund`` row is made.

    Its idempotency key is ``refund-<payment>-<n>`` (the n-th refund of the payment), or
    ``external-<Stripe refund id>`` for a refund Stripe already made (issued in its dashboard)."""
    if stripe_refund_id:
        key = f"external-{stripe_refund_id}"
    else:
        n = int(db.session.scalar(select(func.count()).select_from(Refund).where(
            Refund.payment_id == payment.id)) or 0) + 1
        key = f"refund-{payment.id}-{n}"
    refund = Refund(payment_id=payment.id, enrollment_id=payment.enrollment_id, kind=kind.value,
                    amount_minor=amount, currency=currency or payment.currency, reason=reason[:2000],
                    status=RefundStatus.PENDING.value, idempotency_key=key, stripe_refund_id=stripe_refund_id,
                    requested_by_id=actor.id if actor else None, created_at=now, updated_at=now)
    db.session.add(refund)
    db.session.flush()
    return refund


def plan(enr: Enrollment, amount: int, *, kind: RefundKind, reason: str, now: datetime, actor: User | None,
         ctx: RequestContext | None = None, keep_screening_fee: bool = False) -> list[Refund]:
    """Decide a refund of ``amount`` across the enrollment's charges (newest first). With
    ``keep_screening_fee`` (a withdrawal) the screening fee's charge is left alone. Caller commits."""
    enr = seats.lock_enrollment(enr.id)
    if amount <= 0:
        raise ValidationFailed("Enter an amount greater than zero.", field="amount")
    available = refundable(enr)
    currency = enr.cohort.currency.upper()
    if amount > available:
        raise ValidationFailed(f"That is more than was paid: at most {format_money(max(0, available), currency)} "
                               "can be refunded.", field="amount")
    payments = db.session.scalars(select(Payment).where(
        Payment.enrollment_id == enr.id, Payment.status == PaymentStatus.SUCCEEDED.value)
        .order_by(Payment.succeeded_at.desc(), Payment.id.desc())).all()
    if keep_screening_fee:
        payments = [p for p in payments if p.kind != PaymentKind.SCREENING_FEE]
    left, refunds = amount, []
    for payment in payments:
        room = ledger.net_paid_on_payment(enr.id, payment.id) - _pending(Refund.payment_id == payment.id)
        part = min(room, left)
        if part <= 0:
            continue
        refunds.append(new_refund(payment, part, kind, reason, now=now, actor=actor))
        left -= part
        if left == 0:
            break
    if left:
        raise ValidationFailed("That is more than the charges can take back.", field="amount")
    audit.record("payments.refund_decided", actor=actor, object_type="enrollment", object_id=enr.id, ctx=ctx,
                 now=now, details={"amount_minor": amount, "currency": currency, "kind": kind.value,
                                   "reason": reason[:300], "refunds": [r.id for r in refunds]})
    return refunds


def submit(refund_ids: list[int], *, now: datetime) -> list[Refund]:
    """Send pending refunds to Stripe and record the outcome. Commits; no lock held across Stripe."""
    done = []
    for rid in refund_ids:
        refund = db.session.get(Refund, rid)
        if refund is None or refund.status != RefundStatus.PENDING or refund.stripe_refund_id:
            continue
        pi_id = refund.payment.stripe_payment_intent_id
        amount, key = refund.amount_minor, refund.idempotency_key
        db.session.commit()
        try:
            existing = [r for r in gateway.list_refunds(pi_id) if r["metadata"].get("refund") == str(rid)]
            stripe_refund = existing[0] if existing else gateway.create_refund(
                payment_intent_id=pi_id, amount_minor=amount, idempotency_key=key,
                metadata={"refund": str(rid), "enrollment": str(refund.enrollment_id)})
            attach_refund_fee(stripe_refund, best_effort=True)
        except gateway.GatewayError as exc:
            refund = db.session.get(Refund, rid)
            refund.failure_message = exc.message[:500]
            audit.record("payments.refund_error", object_type="refund", object_id=rid, now=now,
                         details={"error": exc.message[:300]})
            db.session.commit()
            raise
        done.append(apply_stripe_refund(stripe_refund, now=now))
        db.session.commit()
    return [r for r in done if r is not None]


def submit_pending(*, now: datetime) -> list[Refund]:
    """Retry refunds decided but not yet accepted by Stripe (for a scheduler job). Commits."""
    ids = list(db.session.scalars(select(Refund.id).where(Refund.status == RefundStatus.PENDING.value,
                                                          Refund.stripe_refund_id.is_(None)).order_by(Refund.id)))
    db.session.commit()
    done = []
    for rid in ids:
        try:
            done += submit([rid], now=now)
        except gateway.GatewayError:
            continue  # recorded on the refund; tried again next time
    return done


def attach_refund_fee(r: dict, *, best_effort: bool = False) -> dict:
    """Read the refund's balance transaction (its Stripe fee) into ``r["fee_txn"]``. Call with no
    transaction open. With ``best_effort`` a failure leaves it out (the webhook brings it later)."""
    if r.get("fee_txn") or not r.get("balance_transaction"):
        return r
    try:
        r["fee_txn"] = gateway.retrieve_balance_transaction(r["balance_transaction"])
    except gateway.GatewayError:
        if not best_effort:
            raise
    return r


def _record_refund_fee(refund: Refund, txn: dict | None, *, now: datetime) -> None:
    """Stripe's fee on a refund, keyed by the refund's balance transaction (``txn_...``), as the
    fee of a charge is (``checkout._record_fee``): not part of what the participant paid."""
    if not txn or not int(txn.get("fee") or 0):
        return
    ledger.record(enrollment_id=refund.enrollment_id, entry_type=LedgerType.FEE, amount_minor=-int(txn["fee"]),
                  currency=txn.get("currency") or refund.currency, object_id=txn["id"],
                  payment_id=refund.payment_id, refund_id=refund.id, now=now, memo="Stripe fee on refund")


def apply_stripe_refund(r: dict, *, now: datetime) -> Refund | None:
    """Record a refund fetched from Stripe (ours or issued in the dashboard). Idempotent."""
    refund = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == r["id"]))
    if refund is None and str(r["metadata"].get("refund", "")).isdigit():
        refund = db.session.get(Refund, int(r["metadata"]["refund"]))
    payment = None
    if r.get("payment_intent"):
        payment = find_payment_for_intent({"id": r["payment_intent"], "metadata": {}})
    if refund is None:
        if payment is None:
            return None  # not one of ours
        refund = new_refund(payment, r["amount"], RefundKind.EXTERNAL, "Issued in Stripe", now=now, actor=None,
                            currency=r["currency"], stripe_refund_id=r["id"])
        audit.record("payments.refund_external", object_type="enrollment", object_id=payment.enrollment_id,
                     now=now, details={"amount_minor": int(r["amount"]), "currency": refund.currency,
                                       "kind": RefundKind.EXTERNAL.value, "refunds": [refund.id],
                                       "stripe_refund_id": r["id"]})
    refund = locking.lock(Refund, refund.id)
    refund.stripe_refund_id = refund.stripe_refund_id or r["id"]
    if r["status"] == "succeeded":
        _, created = ledger.record(enrollment_id=refund.enrollment_id, entry_type=LedgerType.REFUND,
                                   amount_minor=-int(r["amount"]), currency=r["currency"] or refund.currency,
                                   object_id=r["id"], payment_id=refund.payment_id, refund_id=refund.id,
                                   now=now, memo=f"Refund ({refund.kind})")
        _record_refund_fee(refund, r.get("fee_txn"), now=now)
        if refund.status != RefundStatus.SUCCEEDED:
            refund.status = RefundStatus.SUCCEEDED.value
            refund.updated_at = now
        if created:
            receipts.refund(refund, now=now)
            webhook_events.refund_succeeded(refund, now=now)
    elif r["status"] in ("failed", "canceled") and refund.status == RefundStatus.PENDING:
        refund.status = RefundStatus.FAILED.value
        refund.failure_message = f"Stripe reported the refund {r['status']}."
    return refund


# --------------------------------------------------------------------------------------------
# Entry points (each commits)
# --------------------------------------------------------------------------------------------


def _plan_and_submit(enr: Enrollment, amount: int, *, kind: RefundKind, reason: str, now: datetime,
                     actor: User | None, ctx: RequestContext | None = None,
                     keep_screening_fee: bool = False) -> list[Refund]:
    if amount <= 0:
        db.session.commit()
        return []
    refunds = plan(enr, amount, kind=kind, reason=reason, now=now, actor=actor, ctx=ctx,
                   keep_screening_fee=keep_screening_fee)
    ids = [r.id for r in refunds]
    db.session.commit()
    return submit(ids, now=now)


def _not_cleared_reason(enr: Enrollment) -> str:
    if screening.kept_on_withdrawal(enr) > 0:
        return "Not medically cleared: full refund, the screening fee included"
    return "Not medically cleared: full refund of the deposit"


def refund_deposit_not_cleared(enrollment: Enrollment, *, now: datetime, actor: User | None) -> list[Refund]:
    """Not medically cleared: everything paid (the deposit, the screening fee) comes back in full,
    automatically."""
    amount = max(0, refundable(enrollment))
    return _plan_and_submit(enrollment, amount, kind=RefundKind.NOT_CLEARED, now=now, actor=actor,
                            reason=_not_cleared_reason(enrollment))


def refund_practice_cancelled(enrollment: Enrollment, *, now: datetime, actor: User | None,
                              reason: str = "The practice cancelled") -> list[Refund]:
    """The practice cancels: everything paid comes back in full."""
    amount = max(0, refundable(enrollment))
    return _plan_and_submit(enrollment, amount, kind=RefundKind.PRACTICE_CANCELLED, now=now, actor=actor,
                            reason=reason or "The practice cancelled")


def policy_amount(enr: Enrollment, now: datetime) -> int:
    """What withdrawing at ``now`` refunds: the policy's percent of what was paid, the screening fee
    left out (a withdrawal keeps it)."""
    kept = screening.kept_on_withdrawal(enr)
    paid = ledger.paid(enr.id) - kept
    return min(max(0, refundable(enr) - kept), percent_of(max(0, paid), policy_percent_for(enr, now)))


def withdrawal_quote(enr: Enrollment, now: datetime) -> dict:
    """What withdrawing at ``now`` gives back: paid so far, the policy's percent, the amount and
    the screening fee kept."""
    return {"paid": ledger.paid(enr.id), "percent": policy_percent_for(enr, now),
            "amount": policy_amount(enr, now), "currency": enr.cohort.currency,
            "screening_fee_kept": screening.kept_on_withdrawal(enr)}


def for_enrollment(enr: Enrollment) -> list[Refund]:
    return list(db.session.scalars(select(Refund).where(Refund.enrollment_id == enr.id).order_by(Refund.id)))


def refund_on_withdrawal(enrollment: Enrollment, *, now: datetime, actor: User | None) -> list[Refund]:
    pct = policy_percent_for(enrollment, now)
    return _plan_and_submit(enrollment, policy_amount(enrollment, now), kind=RefundKind.POLICY, now=now,
                            actor=actor, reason=f"Withdrawal: {pct} % refund under the cohort's policy",
                            keep_screening_fee=True)


INTERNAL_NOTE_MAX = 1000


def _finance_amount(enrollment: Enrollment, amount: str | int) -> int:
    try:
        amount_minor = amount if isinstance(amount, int) else to_minor((amount or "").strip(),
                                                                        enrollment.cohort.currency)
    except MoneyError as exc:
        raise ValidationFailed(f"Enter an amount such as 125.00 ({exc}).", field="amount") from exc
    if amount_minor <= 0:
        raise ValidationFailed("Enter an amount greater than zero.", field="amount")
    return amount_minor


def _finance_texts(reason: str, internal_note: str) -> tuple[str, str]:
    reason, internal_note = (reason or "").strip(), (internal_note or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for the refund.", field="reason")
    if len(reason) > 1000:
        raise ValidationFailed("Please keep the reason under 1000 characters.", field="reason")
    if len(internal_note) > INTERNAL_NOTE_MAX:
        raise ValidationFailed(f"Internal note must be at most {INTERNAL_NOTE_MAX} characters "
                               f"(it has {len(internal_note)}).", field="internal_note")
    return reason, internal_note


def finance_refund_preview(enrollment: Enrollment, amount: str | int, *, reason: str, internal_note: str = "",
                           now: datetime) -> dict:
    """What a finance refund of ``amount`` would do, for the confirmation step (changes nothing):
    the amount, what was received and already refunded, what may still be refunded, and what the
    cohort's policy would give if the participant withdrew today. Refuses what ``issue_finance_refund``
    would refuse, with the same messages."""
    reason, internal_note = _finance_texts(reason, internal_note)
    amount_minor = _finance_amount(enrollment, amount)
    available = max(0, refundable(enrollment))
    currency = enrollment.cohort.currency.upper()
    if amount_minor > available:
        raise ValidationFailed(f"That is more than was paid: at most {format_money(available, currency)} "
                               "can be refunded.", field="amount")
    return {"amount": amount_minor, "currency": currency, "refundable": available,
            "paid": ledger.paid(enrollment.id), "refunded": ledger.refunded(enrollment.id),
            "pending": _pending(Refund.enrollment_id == enrollment.id),
            "policy_percent": policy_percent_for(enrollment, now), "policy_amount": policy_amount(enrollment, now),
            "reason": reason, "internal_note": internal_note}


def issue_finance_refund(enrollment: Enrollment, amount: str | int, *, reason: str, now: datetime, actor: User,
                         ctx: RequestContext | None = None, internal_note: str = "",
                         expected_refundable: int | None = None) -> list[Refund]:
    """Finance refunds part or all of what was paid. ``reason`` is the message the participant sees
    (receipt, payments page); ``internal_note`` is finance's own (stored on the refund and in the
    audit log, never shown to the participant). With ``expected_refundable`` (what the confirmation
    page showed) the refund is refused if that changed meanwhile: a second submit of the same
    confirmation, or another refund in between, refunds nothing more."""
    reason, internal_note = _finance_texts(reason, internal_note)
    amount_minor = _finance_amount(enrollment, amount)
    if amount_minor <= 0:
        raise ValidationFailed("Enter an amount greater than zero.", field="amount")
    if expected_refundable is not None:
        locked = seats.lock_enrollment(enrollment.id)
        if max(0, refundable(locked)) != expected_refundable:
            raise Conflict("What can be refunded changed since you confirmed (another refund was made, or "
                           "this one was already submitted); nothing was refunded. Check the ledger and "
                           "try again.", field="amount")
    refunds = plan(enrollment, amount_minor, kind=RefundKind.FINANCE, reason=reason, now=now, actor=actor, ctx=ctx)
    if internal_note:
        for r in refunds:
            r.internal_note = internal_note
        audit.record("payments.refund_internal_note", actor=actor, object_type="enrollment",
                     object_id=enrollment.id, ctx=ctx, now=now,
                     details={"refunds": [r.id for r in refunds], "internal_note": internal_note})
    ids = [r.id for r in refunds]
    db.session.commit()
    return submit(ids, now=now)


# --------------------------------------------------------------------------------------------
# Leaving a cohort (signals.enrollment_left): the refund each exit gives, decided in the same
# transaction as the exit and under its locks (cohort, then enrollment)
# --------------------------------------------------------------------------------------------


@signals.enrollment_left.connect(order=10)
def refund_on_leaving(enr: Enrollment, *, now: datetime, actor: User | None) -> None:
    """Withdrawn: what the cohort's policy gives at ``now`` (the screening fee kept). Not cleared:
    everything paid (the deposit and the screening fee). Cohort cancelled by the practice: everything paid, and a kind email that names it.
    Other exits (declined, offer expired) had nothing paid to refund."""
    from retreat.cohorts.models import EnrollmentStatus as S

    status = S(enr.status)
    if status == S.WITHDRAWN:
        amount, pct = policy_amount(enr, now), policy_percent_for(enr, now)
        if amount > 0:
            plan(enr, amount, kind=RefundKind.POLICY, now=now, actor=actor, keep_screening_fee=True,
                 reason=f"Withdrawal: {pct} % refund under the cohort's policy")
    elif status == S.NOT_CLEARED:
        amount = max(0, refundable(enr))
        if amount:
            plan(enr, amount, kind=RefundKind.NOT_CLEARED, now=now, actor=actor, reason=_not_cleared_reason(enr))
    elif status == S.CANCELLED:
        amount = max(0, refundable(enr))
        if amount:
            plan(enr, amount, kind=RefundKind.PRACTICE_CANCELLED, now=now, actor=actor,
                 reason="The practice cancelled the cohort: full refund")
        _tell_cohort_cancelled(enr, amount, now=now)


def _tell_cohort_cancelled(enr: Enrollment, amount: int, *, now: datetime) -> None:

    from retreat.messaging import outbox

    cohort, person = enr.cohort, enr.participant
    outbox.enqueue(template="cohort_cancelled", dedupe_key=f"enrollment-{enr.id}-cohort-cancelled",
                   to_user=person, now=now,
                   context={"participant_name": person.name, "retreat_title": cohort.retreat.title,
                            "cohort_title": cohort.title,
                            "refund": format_money(amount, cohort.currency) if amount else "",
                            "url": f"{urls.base_url()}/me/enrollments/{enr.id}"})


def submit_pending_job(now: datetime) -> list[Refund]:
    return submit_pending(now=now)


jobs.register("refunds.submit_pending", submit_pending_job, seconds=30)
