"""POST /webhooks/stripe: verify the signature on the raw body, then hand over to the service."""

from __future__ import annotations

import logging

from flask import jsonify, request

from retreat.blueprints.webhooks import bp
from retreat.extensions import csrf, limiter
from retreat.finance import stripe_events
from retreat.payments import gateway
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.security import public_view

log = logging.getLogger(__name__)


@bp.post("/stripe")
@csrf.exempt
@limiter.exempt
@public_view
def stripe_webhook():
    payload = request.get_data(cache=False)  # the raw bytes Stripe signed
    now = now_utc()
    body = None
    try:
        body = gateway.construct_event(payload, request.headers.get("Stripe-Signature"))
        event = stripe_events.checked(body)
    except gateway.SignatureError as exc:  # not from Stripe: nothing is recorded
        return jsonify(error=exc.message), 400
    except gateway.MalformedEvent as exc:  # signed, so from Stripe: a retry would fail the same way
        log.warning("stripe webhook refused: %s", exc.message)
        stripe_events.record_refused(body, exc.message, now=now)
        transaction.keep("the audit event of a refused Stripe event")
        return jsonify(error=exc.message), 400
    try:
        outcome = stripe_events.handle(event, now=now)
    except gateway.GatewayError as exc:
        log.warning("stripe webhook %s (%s) deferred: %s", event["id"], event["type"], exc.message)
        return jsonify(error="Could not re-fetch the object from Stripe; retry later."), 503
    log.info("stripe webhook %s (%s): %s", event["id"], event["type"], outcome)
    return jsonify(received=True, outcome=outcome)
