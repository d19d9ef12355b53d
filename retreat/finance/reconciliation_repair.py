"""Repairing a reconciliation item: a missed webhook applied through the webhook's own code path.

An item in Stripe but not in the ledger (a missed webhook) is repaired by ``repair``, which
builds the Stripe event the webhook would have carried and hands it to
``stripe_events.handle``: the same code path, which re-fetches the object from Stripe. Every
repair is audited; an item repaired once is refused a second time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import User
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound
from retreat.extensions import db
from retreat.finance import stripe_events
from retreat.finance.reconciliation_models import ItemCategory, ItemKind, ReconciliationItem, RunStatus
from retreat.payments import gateway, ledger
from retreat.payments.models import LedgerEntry, LedgerType, Payment


def _event_for(item: ReconciliationItem) -> dict:
    event_id = f"evt_reconcile_repair_{item.id}"
    if item.kind in (ItemKind.CHARGE, ItemKind.FEE):
        ev_type, obj = "payment_intent.succeeded", {"id": item.payment_intent_id, "object": "payment_intent"}
    elif item.kind == ItemKind.REFUND:
        ev_type, obj = "refund.created", {"id": item.stripe_object_id, "object": "refund",
                                          "payment_intent": item.payment_intent_id}
    else:  # the item is the dispute's balance transaction; the event is about the dispute (its source)
        dispute_id = gateway.retrieve_balance_transaction(item.stripe_object_id).get("source") or ""
        ev_type, obj = "charge.dispute.created", {"id": dispute_id, "object": "dispute",
                                                  "payment_intent": item.payment_intent_id,
                                                  "amount": abs(item.stripe_amount_minor or 0)}
    return {"id": event_id, "object": "event", "type": ev_type, "data": {"object": obj}, "livemode": False}


def _recorded(item: ReconciliationItem) -> int | None:
    """The ledger entry (id) that now records the item's Stripe object, or None. For a dispute the
    payment marked disputed counts too (0)."""
    key = item.match_key.split(":", 1)[1]
    entry = ledger.find(LedgerType(item.kind), key)
    if entry is not None:
        return entry.id
    if item.kind == ItemKind.DISPUTE and item.payment_intent_id:
        disputed = db.session.scalar(select(Payment.disputed_at).where(
            Payment.stripe_payment_intent_id == item.payment_intent_id))
        return 0 if disputed is not None else None
    return None


def _refusal(item: ReconciliationItem) -> str | None:
    if item.repaired_at is not None:
        who = item.repaired_by.name if item.repaired_by else "someone"
        return (f"This item was already repaired on {item.repaired_at:%Y-%m-%d %H:%M} UTC by {who}; "
                "nothing was changed.")
    if item.category == ItemCategory.MATCHED:
        return "This item matches the ledger: there is nothing to repair."
    if item.category in (ItemCategory.MISSING_IN_STRIPE, ItemCategory.MISMATCH):
        return ("Only what is in Stripe but missing from the ledger can be repaired here; the ledger is "
                "append-only, so a difference like this one needs an adjustment by finance.")
    if item.category == ItemCategory.DISPUTE and not item.is_open:
        return "This dispute is already recorded here: there is nothing to repair."
    if not item.repairable or not item.payment_intent_id:
        return ("This Stripe object cannot be repaired here: no payment made through this platform has its "
                "PaymentIntent.")
    if item.run.status != RunStatus.DONE:
        return "Wait for the run to finish before repairing its items."
    return None


def repair(item_id: int, *, now: datetime, actor: User | None, ctx: RequestContext | None = None
           ) -> ReconciliationItem:
    """Apply a missed webhook for ``item_id`` through ``stripe_events.handle``. Audited.

    Refused (nothing changed) when the item was repaired already, is not repairable, or the
    ledger meanwhile has the object. Commits the webhook's own work; the caller commits the rest.
    """
    item = db.session.get(ReconciliationItem, item_id)
    if item is None:
        raise NotFound("No such reconciliation item.")
    refusal = _refusal(item)
    if refusal:
        raise Conflict(refusal)
    if _recorded(item) is not None:
        raise Conflict("The ledger already records this Stripe object (its webhook arrived after the run): "
                       "nothing to repair. Run a reconciliation again to see it matched.")
    db.session.commit()  # no transaction (or lock) while Stripe is called, here or in the webhook code
    event = _event_for(item)
    outcome = stripe_events.handle(event, now=now)
    item = locking.lock(ReconciliationItem, item_id)
    if item.repaired_at is not None:  # a concurrent click repaired it first
        raise Conflict(_refusal(item) or "Already repaired.")
    entry_id = _recorded(item)
    if entry_id is None:
        raise Conflict(f"Applying the Stripe event did not record it (webhook outcome: {outcome}); "
                       "nothing was marked repaired.")
    item.repaired_at = now
    item.repaired_by_id = actor.id if actor else None
    item.is_open = False
    if entry_id:
        entry = db.session.get(LedgerEntry, entry_id)
        item.ledger_entry_id = entry_id
        item.ledger_amount_minor, item.ledger_currency = entry.amount_minor, entry.currency
    audit.record("finance.reconciliation_repaired", actor=actor, object_type="reconciliation_item",
                 object_id=item.id, ctx=ctx, now=now,
                 details={"run": item.run_id, "kind": item.kind, "category": item.category,
                          "stripe_object_id": item.stripe_object_id, "payment_intent": item.payment_intent_id,
                          "event": event["id"], "outcome": outcome, "ledger_entry": entry_id or None})
    return item

