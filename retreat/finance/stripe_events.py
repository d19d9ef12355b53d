"""Stripe webhook events: verified by the view, re-fetched here, applied once.

The body of an event is only a hint: the PaymentIntent or refund it names is fetched again from
Stripe (with no transaction open), then the event id is recorded in the same transaction as the
state change. Duplicates, late and out-of-order events (a refund before its charge's success)
all converge on the same ledger, because every effect is derived from Stripe's current state and
every ledger entry is unique per Stripe object.

A succeeded PaymentIntent comes with its charge's balance transaction, so the Stripe fee is
recorded too (a ``fee`` entry keyed by the ``txn_`` id). A ``charge.dispute.*`` event re-fetches
the dispute and applies all its balance transactions (``retreat.payments.disputes``). A
``payout.*`` event fetches nothing: it records a payout sync request in the same commit as the
event id, which the scheduler carries out (``retreat.finance.payouts.sync_requested``).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.extensions import db
from retreat.finance import payouts
from retreat.payments import attempts, disputes, gateway, refunds
from retreat.payments import checkout as payments
from retreat.payments.models import Payment, StripeEvent

HANDLED = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
           "charge.refunded", "charge.dispute.created", "charge.dispute.funds_withdrawn",
           "charge.dispute.funds_reinstated", "charge.dispute.updated", "charge.dispute.closed")


_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TYPE = re.compile(r"[a-z0-9_.]{1,80}")
# Events whose object is fetched again from Stripe by its id (``_fetch``).
_NEEDS_OBJECT_ID = ("payment_intent.", "refund.", "charge.dispute.")
REFUSED_ACTION = "stripe.event_refused"


def checked(body) -> dict:
    """The verified body as an event ``handle`` can process, or MalformedEvent saying why not."""
    if not isinstance(body, dict):
        raise gateway.MalformedEvent(f"The body is a JSON {type(body).__name__}, not an event object.")
    event_id, ev_type = body.get("id"), body.get("type")
    if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
        raise gateway.MalformedEvent("The event id is missing or not a Stripe id (letters, digits, _ and -, "
                                     "at most 80).")
    if not isinstance(ev_type, str) or not _TYPE.fullmatch(ev_type):
        raise gateway.MalformedEvent("The event type is missing or not a Stripe event type.")
    data = body.get("data", {})
    if not isinstance(data, dict) or not isinstance(data.get("object", {}), dict):
        raise gateway.MalformedEvent("The event's data.object is not an object.")
    obj = data.get("object") or {}
    for key in ("id", "payment_intent"):
        value = obj.get(key)
        if value is not None and not (isinstance(value, str) and _ID.fullmatch(value)):
            raise gateway.MalformedEvent(f"The event's data.object.{key} is not a Stripe id.")
    if ev_type.startswith(_NEEDS_OBJECT_ID) and not obj.get("id"):
        raise gateway.MalformedEvent(f"A {ev_type} event names no object id.")
    return body


def record_refused(body, reason: str, *, now: datetime) -> None:
    """Leave a signed event refused as malformed in the audit log (action ``stripe.event_refused``):
    its id when it has a readable one, and why. The body itself is not kept."""
    event_id = body.get("id") if isinstance(body, dict) else None
    safe_id = event_id[:64] if isinstance(event_id, str) and _ID.fullmatch(event_id[:64]) else None
    audit.record(REFUSED_ACTION, object_type="stripe_event", object_id=safe_id, details={"reason": reason[:300]},
                 now=now)


def _fetch(ev_type: str, obj: dict) -> tuple[dict | None, list[dict], dict | None]:
    """Re-read from Stripe what the event is about: (payment intent, refunds, dispute)."""
    if ev_type.startswith("payment_intent."):
        return payments.fetch_payment_intent(obj["id"]), [], None
    if ev_type.startswith("refund."):
        r = refunds.attach_refund_fee(gateway.retrieve_refund(obj["id"]))
        pi = payments.fetch_payment_intent(r["payment_intent"]) if r.get("payment_intent") else None
        return pi, [r], None
    if ev_type.startswith("charge.dispute."):
        if not str(obj.get("id", "")).startswith(("dp_", "du_")):  # du_: older dispute ids
            return None, [], None
        dispute = gateway.retrieve_dispute(obj["id"])
        pi_id = dispute.get("payment_intent")
        if not pi_id and dispute.get("charge"):
            pi_id = gateway.retrieve_charge(dispute["charge"]).get("payment_intent")
        return (payments.fetch_payment_intent(pi_id) if pi_id else None), [], dispute
    if ev_type == "charge.refunded":
        pi_id = obj.get("payment_intent")
        if not pi_id:
            return None, [], None
        return (payments.fetch_payment_intent(pi_id),
                [refunds.attach_refund_fee(r) for r in gateway.list_refunds(pi_id)], None)
    return None, [], None


def handle(event: dict, *, now: datetime) -> str:
    """Process one verified event. Commits. Returns a short outcome for the response and log."""
    event_id, ev_type = event["id"], event["type"]
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        obj = {}
    seen = db.session.scalar(select(StripeEvent.id).where(StripeEvent.event_id == event_id))
    db.session.commit()  # no transaction (or lock) while Stripe is called
    if seen:
        return "duplicate"
    known = ev_type in HANDLED or ev_type.startswith("refund.")
    pi, stripe_refunds, dispute = _fetch(ev_type, obj) if known else (None, [], None)
    row = StripeEvent(event_id=event_id, event_type=ev_type[:80], object_id=str(obj.get("id", ""))[:80] or None,
                      received_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:  # the same event, processed concurrently: it is (being) applied there
        db.session.rollback()
        return "duplicate"
    to_submit: list[int] = []
    outcome = "acknowledged"
    if pi is not None:
        result = payments.sync_payment_intent(pi, now=now)
        to_submit += result.refunds_to_submit
        outcome = "applied" if result.payment is not None else "not ours"
    for r in stripe_refunds:
        refunds.apply_stripe_refund(r, now=now)
    if dispute is not None and pi is not None:
        payment = attempts.find_payment_for_intent(pi)
        if payment is not None:
            disputes.apply(payment, dispute, now=now)
    if ev_type.startswith("payout."):  # the scheduler syncs payouts (finance.payouts_requested)
        payouts.request_sync()
        outcome = "payout sync requested"
    row.outcome = outcome
    db.session.commit()
    if to_submit:
        refunds.submit(to_submit, now=now)
    return outcome


def disputed_payments() -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.disputed_at.is_not(None))))
