"""Payout scenarios against localstripe behind ``tests/stripe_proxy.py``: real payments, refunds
and disputes through the webhook, then a Stripe payout settling their balance transactions."""

from __future__ import annotations

from dataclasses import dataclass, field

from retreat.cohorts.models import Enrollment
from retreat.payments import gateway
from tests import payments_helpers as ph


@dataclass
class Scenario:
    enrollment: Enrollment
    txns: list[str] = field(default_factory=list)  # balance transactions in the payout
    payout: dict | None = None


def charge_txn(pi: dict) -> str:
    return gateway.retrieve_charge(pi["latest_charge"])["balance_transaction"]


def refund_txn(proxy, refund_id: str) -> str:
    return proxy.upstream_get(f"/v1/refunds/{refund_id}")["balance_transaction"]


def paid_refunded_disputed(client, proxy, *, name: str | None = None, refund: int = 10000,
                           dispute: bool = True) -> Scenario:
    """Deposit 50,000 and balance 250,000 paid (webhooks delivered), ``refund`` refunded from the
    Stripe dashboard, the deposit disputed with its funds withdrawn. Returns the txn ids."""
    c = ph.cohort(price_minor=300000, deposit_minor=50000)
    enr = ph.applicant(c, **({"name": name} if name else {}))
    _, dep = ph.start_and_confirm(enr)
    ph.deliver(client, "payment_intent.succeeded", {"id": dep["id"]})
    _, bal = ph.start_and_confirm(enr, "balance")
    ph.deliver(client, "payment_intent.succeeded", {"id": bal["id"]})
    sc = Scenario(enr, [charge_txn(dep), charge_txn(bal)])
    if refund:
        re = gateway.create_refund(payment_intent_id=bal["id"], amount_minor=refund,
                                   idempotency_key=f"dash-{bal['id']}", metadata={})
        ph.deliver(client, "refund.created", {"id": re["id"], "object": "refund"})
        sc.txns.append(refund_txn(proxy, re["id"]))
    if dispute:
        dp = proxy.withdraw_dispute_funds(proxy.create_dispute(dep["id"])["id"])
        ph.deliver(client, "charge.dispute.funds_withdrawn", dp)
        sc.txns.append(dp["balance_transactions"][0]["id"])
    return sc
