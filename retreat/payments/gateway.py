"""The Stripe gateway: the only module that imports ``stripe``.

Everything else gets plain dicts back (``id``, ``status``, ``amount``, ``currency`` upper case,
``metadata`` ...) and ``GatewayError`` on failure. Configuration comes from the app config
(``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``, ``STRIPE_WEBHOOK_SECRET``). The calls use only the
parameters that both real Stripe and ``localstripe`` accept. Idempotency keys are sent on every
create, but localstripe ignores them, so callers keep idempotency on our side too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import stripe
from flask import current_app

from retreat.core.errors import DomainError

REAL_STRIPE_API = "https://api.stripe.com"


class GatewayError(DomainError):
    """Stripe refused the call or could not be reached."""

    status = 502


class SignatureError(DomainError):
    status = 400


def api_base() -> str:
    return (current_app.config.get("STRIPE_API_BASE") or REAL_STRIPE_API).rstrip("/")


def is_localstripe() -> bool:
    return "api.stripe.com" not in api_base()


def js_url() -> str:
    """Stripe.js served by whichever Stripe the app points at."""
    return "https://js.stripe.com/v3/" if not is_localstripe() else f"{api_base()}/js.stripe.com/v3/"


def publishable_key() -> str:
    return current_app.config["STRIPE_PUBLISHABLE_KEY"]


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(current_app.config["STRIPE_SECRET_KEY"],
                               base_addresses={"api": api_base()}, max_network_retries=1)


def _call(fn, *args, **kwargs) -> dict:
    try:
        obj = fn(*args, **kwargs)
    except stripe.StripeError as exc:
        message = getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__
        raise GatewayError(f"The payment provider refused the request: {message}") from exc
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("id")
    return str(value)


def _payment_intent(raw: dict) -> dict:
    err = raw.get("last_payment_error") or {}
    return {
        "id": raw["id"],
        "object": "payment_intent",
        "status": raw.get("status"),
        "amount": int(raw.get("amount") or 0),
        "currency": str(raw.get("currency") or "").upper(),
        "metadata": dict(raw.get("metadata") or {}),
        "client_secret": raw.get("client_secret"),
        "latest_charge": _id(raw.get("latest_charge")),
        "customer": _id(raw.get("customer")),
        "failure_message": (err.get("message") if isinstance(err, dict) else "") or "",
    }


def _refund(raw: dict) -> dict:
    return {
        "id": raw["id"],
        "object": "refund",
        "status": raw.get("status"),
        "amount": int(raw.get("amount") or 0),
        "currency": str(raw.get("currency") or "").upper(),
        "metadata": dict(raw.get("metadata") or {}),
        "payment_intent": _id(raw.get("payment_intent")),
        "charge": _id(raw.get("charge")),
        # The refund's balance transaction (its Stripe fee, if any); an expanded one is kept whole.
        "balance_transaction": _id(raw.get("balance_transaction")),
        **({"fee_txn": _balance_transaction(raw["balance_transaction"])}
           if isinstance(raw.get("balance_transaction"), dict) and "amount" in raw["balance_transaction"] else {}),
    }


# --------------------------------------------------------------------------------------------
# PaymentIntents
# --------------------------------------------------------------------------------------------


def create_payment_intent(*, amount_minor: int, currency: str, idempotency_key: str,
                          metadata: dict[str, str]) -> dict:
    params = {"amount": int(amount_minor), "currency": currency.lower(),
              "metadata": {k: str(v) for k, v in metadata.items()},
              "payment_method_types": ["card"]}
    raw = _call(_client().v1.payment_intents.create, params=params,
                options={"idempotency_key": idempotency_key})
    return _payment_intent(raw)


def retrieve_payment_intent(payment_intent_id: str) -> dict:
    return _payment_intent(_call(_client().v1.payment_intents.retrieve, payment_intent_id))


def cancel_payment_intent(payment_intent_id: str) -> dict:
    return _payment_intent(_call(_client().v1.payment_intents.cancel, payment_intent_id))


def confirm_with_payment_method(payment_intent_id: str, payment_method: str) -> dict:
    """Server-side confirmation with a card the browser tokenised (used with localstripe, whose
    Stripe.js cannot confirm a fresh PaymentIntent itself)."""
    client = _client()
    _call(client.v1.payment_intents.update, payment_intent_id, params={"payment_method": payment_method})
    try:
        return _payment_intent(client.v1.payment_intents.confirm(payment_intent_id).to_dict())
    except stripe.CardError:  # declined: the intent itself says why
        return retrieve_payment_intent(payment_intent_id)
    except stripe.StripeError as exc:
        raise GatewayError(f"The payment provider refused the request: {exc.user_message or exc}") from exc


def create_test_payment_method(card_number: str) -> str:
    """A test card PaymentMethod (test mode only; used by tests and the demo)."""
    raw = _call(_client().v1.payment_methods.create, params={
        "type": "card", "card": {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    return raw["id"]


# --------------------------------------------------------------------------------------------
# Saved cards (SetupIntents) and off-session charges (automatic installments)
# --------------------------------------------------------------------------------------------


class CardGone(GatewayError):
    """The saved payment method no longer exists or is no longer attached to the customer."""


def create_customer(*, email: str, name: str, idempotency_key: str, metadata: dict[str, str]) -> str:
    raw = _call(_client().v1.customers.create, params={
        "email": email, "name": name, "metadata": {k: str(v) for k, v in metadata.items()}},
        options={"idempotency_key": idempotency_key})
    return raw["id"]


def _setup_intent(raw: dict) -> dict:
    return {"id": raw["id"], "object": "setup_intent", "status": raw.get("status"),
            "client_secret": raw.get("client_secret"), "customer": _id(raw.get("customer")),
            "payment_method": _id(raw.get("payment_method")), "metadata": dict(raw.get("metadata") or {})}


def create_setup_intent(*, customer: str, idempotency_key: str, metadata: dict[str, str]) -> dict:
    raw = _call(_client().v1.setup_intents.create, params={
        "customer": customer, "payment_method_types": ["card"],
        "metadata": {k: str(v) for k, v in metadata.items()}}, options={"idempotency_key": idempotency_key})
    return _setup_intent(raw)


def retrieve_setup_intent(setup_intent_id: str) -> dict:
    return _setup_intent(_call(_client().v1.setup_intents.retrieve, setup_intent_id))


def confirm_setup_intent(setup_intent_id: str, payment_method: str) -> dict:
    """Server-side confirmation with a PaymentMethod (tests and the demo)."""
    return _setup_intent(_call(_client().v1.setup_intents.confirm, setup_intent_id,
                               params={"payment_method": payment_method}))


def card_details(payment_method_id: str) -> dict:
    """``{"id", "customer", "brand", "last4", "exp_month", "exp_year"}``; CardGone if it does not exist."""
    try:
        raw = _client().v1.payment_methods.retrieve(payment_method_id).to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404 or getattr(exc, "code", None) == "resource_missing":
            raise CardGone("The saved card no longer exists.") from exc
        raise GatewayError(f"The payment provider refused the request: {exc.user_message or exc}") from exc
    except stripe.StripeError as exc:
        raise GatewayError(f"The payment provider refused the request: {exc.user_message or exc}") from exc
    card = raw.get("card") or {}
    return {"id": raw["id"], "customer": _id(raw.get("customer")), "brand": str(card.get("brand") or ""),
            "last4": str(card.get("last4") or ""), "exp_month": card.get("exp_month"),
            "exp_year": card.get("exp_year")}


def attach_payment_method(payment_method_id: str, customer: str) -> None:
    _call(_client().v1.payment_methods.attach, payment_method_id, params={"customer": customer})


def detach_payment_method(payment_method_id: str) -> None:
    _call(_client().v1.payment_methods.detach, payment_method_id)


def charge_off_session(*, customer: str, payment_method: str, amount_minor: int, currency: str,
                       idempotency_key: str, metadata: dict[str, str]) -> dict:
    """Charge a saved card without the person present. Returns ``{"outcome": "succeeded" |
    "requires_action" | "declined" | "processing", "payment_intent": dict | None, "message": str}``;
    CardGone when the card is missing or detached; GatewayError when Stripe cannot be reached."""
    details = card_details(payment_method)
    if details["customer"] != customer:
        raise CardGone("The saved card was removed from your account.")
    params = {"amount": int(amount_minor), "currency": currency.lower(), "customer": customer,
              "payment_method": payment_method, "off_session": True, "confirm": True,
              "payment_method_types": ["card"], "metadata": {k: str(v) for k, v in metadata.items()}}
    try:
        raw = _client().v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
    except stripe.CardError as exc:
        err = exc.error
        pi = getattr(err, "payment_intent", None) if err is not None else None
        pi_dict = _payment_intent(pi.to_dict() if hasattr(pi, "to_dict") else pi) if pi else None
        if getattr(exc, "code", None) == "authentication_required" and pi_dict:
            return {"outcome": "requires_action", "payment_intent": pi_dict, "message": exc.user_message or ""}
        return {"outcome": "declined", "payment_intent": pi_dict,
                "message": exc.user_message or str(exc) or "The card was declined."}
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) in ("resource_missing", "payment_method_not_available"):
            raise CardGone("The saved card no longer exists.") from exc
        raise GatewayError(f"The payment provider refused the request: {exc.user_message or exc}") from exc
    except stripe.StripeError as exc:
        raise GatewayError(f"The payment provider refused the request: {exc.user_message or exc}") from exc
    pi = _payment_intent(raw.to_dict())
    outcome = {"succeeded": "succeeded", "requires_action": "requires_action",
               "processing": "processing"}.get(pi["status"], "declined")
    return {"outcome": outcome, "payment_intent": pi, "message": pi["failure_message"]}


def list_payment_intents(limit: int = 100) -> list[dict]:
    raw = _call(_client().v1.payment_intents.list, params={"limit": limit})
    return [_payment_intent(p) for p in raw.get("data", [])]


# --------------------------------------------------------------------------------------------
# Refunds, balance, events
# --------------------------------------------------------------------------------------------


def create_refund(*, payment_intent_id: str, amount_minor: int, idempotency_key: str,
                  metadata: dict[str, str]) -> dict:
    params = {"payment_intent": payment_intent_id, "amount": int(amount_minor),
              "metadata": {k: str(v) for k, v in metadata.items()}}
    return _refund(_call(_client().v1.refunds.create, params=params,
                         options={"idempotency_key": idempotency_key}))


def retrieve_refund(refund_id: str) -> dict:
    return _refund(_call(_client().v1.refunds.retrieve, refund_id))


def list_refunds(payment_intent_id: str) -> list[dict]:
    raw = _call(_client().v1.refunds.list, params={"payment_intent": payment_intent_id, "limit": 100})
    return [_refund(r) for r in raw.get("data", [])]


def list_balance_transactions(limit: int = 100) -> list[dict]:
    raw = _call(_client().v1.balance_transactions.list, params={"limit": limit})
    return [{"id": t["id"], "type": t.get("type"), "amount": int(t.get("amount") or 0),
             "currency": str(t.get("currency") or "").upper(), "source": _id(t.get("source"))}
            for t in raw.get("data", [])]


def list_events(limit: int = 100) -> list[dict]:
    raw = _call(_client().v1.events.list, params={"limit": limit})
    return list(raw.get("data", []))


# --------------------------------------------------------------------------------------------
# Charges, balance transactions (fees), disputes and payouts
# --------------------------------------------------------------------------------------------


def _balance_transaction(raw: dict) -> dict:
    """A balance transaction: ``amount`` (gross), ``fee`` (positive = Stripe took money), ``net``,
    all signed minor units in the balance currency."""
    amount, fee = int(raw.get("amount") or 0), int(raw.get("fee") or 0)
    return {"id": raw["id"], "object": "balance_transaction", "type": str(raw.get("type") or ""),
            "reporting_category": str(raw.get("reporting_category") or ""), "amount": amount, "fee": fee,
            "net": int(raw["net"]) if raw.get("net") is not None else amount - fee,
            "currency": str(raw.get("currency") or "").upper(), "source": _id(raw.get("source")),
            "created": int(raw.get("created") or 0), "status": str(raw.get("status") or "")}


def retrieve_charge(charge_id: str) -> dict:
    raw = _call(_client().v1.charges.retrieve, charge_id)
    return {"id": raw["id"], "object": "charge", "amount": int(raw.get("amount") or 0),
            "currency": str(raw.get("currency") or "").upper(), "status": raw.get("status"),
            "payment_intent": _id(raw.get("payment_intent")),
            "balance_transaction": _id(raw.get("balance_transaction"))}


def retrieve_balance_transaction(txn_id: str) -> dict:
    return _balance_transaction(_call(_client().v1.balance_transactions.retrieve, txn_id))


def retrieve_dispute(dispute_id: str) -> dict:
    """A dispute with its balance transactions (funds withdrawn: negative; reinstated: positive)."""
    raw = _call(_client().v1.disputes.retrieve, dispute_id)
    txns = [t if isinstance(t, dict) else {"id": t} for t in raw.get("balance_transactions") or []]
    full = [_balance_transaction(t) if "amount" in t else retrieve_balance_transaction(t["id"]) for t in txns]
    return {"id": raw["id"], "object": "dispute", "amount": int(raw.get("amount") or 0),
            "currency": str(raw.get("currency") or "").upper(), "status": raw.get("status"),
            "charge": _id(raw.get("charge")), "payment_intent": _id(raw.get("payment_intent")),
            "balance_transactions": full}


def _payout(raw: dict) -> dict:
    return {"id": raw["id"], "object": "payout", "amount": int(raw.get("amount") or 0),
            "currency": str(raw.get("currency") or "").upper(), "status": str(raw.get("status") or ""),
            "arrival_date": int(raw.get("arrival_date") or 0), "created": int(raw.get("created") or 0),
            "automatic": bool(raw.get("automatic", True))}


def server_side_filter() -> bool:
    """May list calls send ``created`` (Stripe filters on its side)? Real Stripe yes, localstripe
    refuses it ("Unexpected created"); ``STRIPE_LIST_CREATED_FILTER`` overrides. Results are
    filtered on our side either way."""
    flag = current_app.config.get("STRIPE_LIST_CREATED_FILTER")
    if flag is None or flag == "":
        return not is_localstripe()
    if isinstance(flag, str):
        return flag.strip().lower() in ("1", "true", "yes", "on")
    return bool(flag)


def list_payouts_page(*, created_gte: int | None = None, starting_after: str | None = None,
                      limit: int = 100) -> tuple[list[dict], bool]:
    """One page of payouts, newest first: (payouts, has_more)."""
    params: dict[str, Any] = {"limit": limit}
    if created_gte is not None and server_side_filter():
        params["created"] = {"gte": int(created_gte)}
    if starting_after:
        params["starting_after"] = starting_after
    raw = _call(_client().v1.payouts.list, params=params)
    data = raw.get("data", [])
    kept = [_payout(p) for p in data if created_gte is None or (p.get("created") or 0) >= created_gte]
    # Newest first: once a page reaches past ``created_gte`` the older pages hold nothing wanted.
    more = bool(raw.get("has_more")) and len(kept) == len(data)
    return kept, more


def list_payout_transactions_page(payout_id: str, *, starting_after: str | None = None,
                                  limit: int = 100) -> tuple[list[dict], bool]:
    """One page of the balance transactions a payout settled: (transactions, has_more)."""
    params: dict[str, Any] = {"payout": payout_id, "limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    raw = _call(_client().v1.balance_transactions.list, params=params)
    return [_balance_transaction(t) for t in raw.get("data", [])], bool(raw.get("has_more"))


# --------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------


# How far a signature's timestamp (``t=``) may be from now, either way: an old one is a replay, a
# future one a clock we cannot trust. Stripe's own default tolerance.
SIGNATURE_TOLERANCE_SECONDS = 300


class MalformedEvent(DomainError):
    """A validly signed webhook body that is not an event we can process (recorded, answered 400:
    Stripe would retry a 5xx forever)."""

    status = 400


def construct_event(payload: bytes, signature_header: str | None, *, now: float | None = None) -> Any:
    """Verify the ``Stripe-Signature`` of the raw body; return the body's JSON value (any shape:
    ``finance.stripe_events.checked`` tells an event from the rest). SignatureError when the
    signature is missing, wrong, too old or too far in the future; MalformedEvent when a signed
    body is not JSON."""
    if not signature_header:
        raise SignatureError("Missing Stripe-Signature header.")
    now = time.time() if now is None else now
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature_header, current_app.config["STRIPE_WEBHOOK_SECRET"],
                                              SIGNATURE_TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise SignatureError("Invalid webhook signature or payload.") from exc
    if _signed_at(signature_header) > now + SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureError("The signature's timestamp is in the future.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MalformedEvent("The signed body is not JSON.") from exc


def _signed_at(header: str) -> int:
    """The ``t=`` of a header ``verify_header`` accepted (so it holds one integer)."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            return int(value)
    raise SignatureError("Invalid webhook signature or payload.")


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` Stripe would send for ``payload`` (tests and replays)."""
    t = int(timestamp if timestamp is not None else time.time())
    sig = hmac.new(secret.encode(), b"%d.%s" % (t, payload), hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def event_payload(event_id: str, event_type: str, obj: dict, created: int | None = None) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "created": int(created or time.time()), "livemode": False,
                       "data": {"object": obj}}).encode()


def register_localstripe_webhook(url: str, *, hook_id: str = "retreat") -> None:
    """Tell localstripe where to deliver its (signed) events. No-op against real Stripe."""
    if not is_localstripe():
        return
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode({"url": url, "secret": current_app.config["STRIPE_WEBHOOK_SECRET"]}).encode()
    req = urllib.request.Request(f"{api_base()}/_config/webhooks/{hook_id}", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback test server
            resp.read()
    except OSError as exc:
        raise GatewayError(f"Could not register the webhook with localstripe: {exc}") from exc
