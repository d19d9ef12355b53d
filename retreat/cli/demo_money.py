"""Demo money: every payment and refund of the demo goes through the same code real use does.

With a Stripe API to talk to (``make run`` starts localstripe before seeding), a payment is the
participant's: ``checkout.begin`` -> ``ensure_intent`` -> a test card confirmed at Stripe -> a
signed ``payment_intent.succeeded`` event built, verified (``gateway.construct_event``) and
processed by ``finance.stripe_events.handle``, the very function the webhook view calls (it re-fetches
the PaymentIntent, records the charge and the Stripe fee in the ledger, confirms the seat). Refunds
the rules decide are sent with ``refunds.submit_pending``; a reconciliation run then compares
Stripe with the ledger.

Without one (``offline``), the PaymentIntent Stripe would return is built here and applied with
``checkout.sync_payment_intent``, the function the webhook handler applies it with; refunds are
applied with ``refunds.apply_stripe_refund`` likewise. No reconciliation run is possible then
(there is no Stripe to compare with), and ``seed`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cli.demo_journeys import new_request
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.finance import reconciliation, stripe_events
from retreat.payments import autopay, checkout, gateway, pricing, refunds
from retreat.payments.models import (
    DiscountCode,
    DiscountKind,
    DiscountRedemption,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
)

TEST_CARD = "4242424242424242"
HCP_CODE = "HEALTHCARE15"
HCP_PERCENT = 15


class DemoPaymentFailed(DomainError):
    status = 500


def stripe_reachable() -> bool:
    """Whether the configured Stripe API answers (localstripe under ``make run``)."""
    try:
        gateway.list_balance_transactions(limit=1)
    except gateway.GatewayError:
        return False
    return True


@dataclass
class Payer:
    """Pays and refunds for the demo people, online (through Stripe) or offline."""

    online: bool
    started_at: datetime | None = None
    payments: list[int] = field(default_factory=list)

    def pay(self, enr: Enrollment, kind: PaymentKind, *, at: datetime) -> Payment:
        new_request()
        start = checkout.begin(enr, kind, now=at, actor=enr.participant)
        if start.payment is None:
            raise DemoPaymentFailed(f"The demo could not pay for enrollment {enr.id}: {start.message}")
        payment_id = start.payment.id
        if self.online:
            self._pay_at_stripe(payment_id, at=at)
        else:
            self._pay_offline(start.payment, at=at)
        payment = db.session.get(Payment, payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise DemoPaymentFailed(f"The demo payment {payment_id} did not succeed ({payment.status}).")
        self.payments.append(payment_id)
        return payment

    def save_card_for_installments(self, enr: Enrollment, count: int, *, at: datetime) -> bool:
        """The participant chooses ``count`` installments charged automatically: a 4242 card saved
        through a real SetupIntent at localstripe (online only: offline there is no card to save)."""
        new_request()
        checkout.choose_plan(enr, count, now=at, actor=enr.participant)
        if not self.online:
            return False
        mandate = autopay.start(enr, now=at, actor=enr.participant)
        db.session.commit()
        si = autopay.ensure_setup_intent(mandate.id)
        gateway.confirm_setup_intent(si["id"], gateway.create_test_payment_method(TEST_CARD))
        autopay.complete(mandate.id, now=at, actor=enr.participant)
        db.session.commit()
        return True

    def _pay_at_stripe(self, payment_id: int, *, at: datetime) -> None:
        db.session.commit()  # checkout's step 1 ends its transaction before Stripe is called
        pi = checkout.ensure_intent(payment_id)
        pi = gateway.confirm_with_payment_method(pi["id"], gateway.create_test_payment_method(TEST_CARD))
        payload = gateway.event_payload(f"evt_demo_{pi['id']}", "payment_intent.succeeded", pi)
        header = gateway.signature_header(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])
        event = stripe_events.checked(gateway.construct_event(payload, header))
        stripe_events.handle(event, now=at)

    @staticmethod
    def _pay_offline(payment: Payment, *, at: datetime) -> None:
        pi = {"id": f"pi_demo{payment.id:08d}", "object": "payment_intent", "status": "succeeded",
              "amount": payment.amount_minor, "currency": payment.currency,
              "metadata": checkout.metadata_for(payment), "latest_charge": None, "failure_message": ""}
        new_request()  # the webhook is a request of its own
        checkout.sync_payment_intent(pi, now=at)

    def settle_refunds(self, *, at: datetime) -> list[Refund]:
        """Send the refunds the rules decided (e.g. on a withdrawal) and record Stripe's answer."""
        new_request()
        if self.online:
            return refunds.submit_pending(now=at)
        done = []
        for refund in list(db.session.scalars(select(Refund).where(
                Refund.status == RefundStatus.PENDING.value, Refund.stripe_refund_id.is_(None)).order_by(Refund.id))):
            new_request()
            done.append(refunds.apply_stripe_refund(
                {"id": f"re_demo{refund.id:08d}", "object": "refund", "status": "succeeded",
                 "amount": refund.amount_minor, "currency": refund.currency, "metadata": {"refund": str(refund.id)},
                 "payment_intent": refund.payment.stripe_payment_intent_id, "charge": None}, now=at))
        return [r for r in done if r is not None]

    def reconcile(self, *, now: datetime, actor: User):
        """A reconciliation run over what the demo put into Stripe (None offline)."""
        if not self.online:
            return None
        db.session.commit()
        return reconciliation.run(since=self.started_at, until=now, now=now, actor=actor)


# --------------------------------------------------------------------------------------------
# Discounts and scholarships
# --------------------------------------------------------------------------------------------


def healthcare_code(*, now: datetime) -> DiscountCode:
    """The practice's healthcare-professional code (staff approve each use on seeing a licence)."""
    code = db.session.scalar(select(DiscountCode).where(DiscountCode.code == HCP_CODE))
    if code is None:
        code = DiscountCode(code=HCP_CODE, description=f"Healthcare professionals: {HCP_PERCENT}% off the price, "
                                                         "approved by staff on seeing a current licence",
                            kind=DiscountKind.PERCENT.value, percent=HCP_PERCENT, requires_approval=True,
                            is_active=True, created_at=now, updated_at=now)
        db.session.add(code)
        db.session.flush()
    return code


def redeem_healthcare_code(enr: Enrollment, *, evidence: str, approver: User, at: datetime) -> DiscountRedemption:
    new_request()
    healthcare_code(now=at)
    new_request()
    red = pricing.redeem_code(enr, HCP_CODE, now=at, actor=enr.participant, evidence=evidence)
    new_request()
    return pricing.decide_redemption(red, approve=True, now=at, actor=approver)


def grant_scholarship(enr: Enrollment, price_minor: int, *, reason: str, by: User, at: datetime):
    new_request()
    return pricing.set_scholarship(enr, price_minor, reason=reason, now=at, actor=by)
