"""Outbound webhooks: register endpoints, emit events, sign deliveries.

- **Events** (``EVENT_TYPES``) carry ids, names, emails and non-clinical statuses only; ``emit``
  refuses a payload key that looks clinical, as the email outbox does.
- ``emit(type, data, now=)`` writes the event and one delivery per subscribed, enabled endpoint
  in the caller's transaction: the change and its webhooks commit together or not at all.
- **Signature** (Stripe's scheme): ``Retreat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>.<raw body>" keyed by the endpoint's secret>``. The body is the same bytes on every retry, and
  so is the event id; ``t`` is the time of the attempt.
- **Addresses** (SSRF): only http(s) URLs without credentials whose host resolves to public
  addresses; loopback, private, link-local and reserved ones are refused unless
  ``WEBHOOK_ALLOW_PRIVATE_URLS=1`` (``make run`` and the tests set it). The dispatcher checks again
  when it connects, to the address it checked.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from retreat import audit
from retreat.core.context import Actor, RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field
from retreat.core.errors import NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging.outbox import _CLINICAL_KEYS
from retreat.messaging.webhook_models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from retreat.timeutil import now_utc

# type -> what it means (shown on the admin page and in the API reference)
EVENT_TYPES: dict[str, str] = {
    "consultation.booked": "A free consultation was booked (on the site, the widget or the API).",
    "consultation.rescheduled": "A consultation moved to another time.",
    "consultation.cancelled": "A consultation was cancelled by the guest or the facilitator.",
    "enrollment.status_changed": "An application moved on (applied, cleared, deposit paid, withdrawn...).",
    "payment.succeeded": "A payment (deposit, balance or installment) was received.",
    "refund.succeeded": "A refund was paid out.",
    "circle.scheduled": "An integration circle was added or moved.",
    "webhook.test": "Sent by 'Send a test event'; nothing happened.",
}
RETRY_FOR = timedelta(hours=24)
# Seconds before each retry (then every 2 hours until 24 hours have passed).
BACKOFF = (60, 300, 1800, 3600, 7200)
URL_MAX = 500
DESCRIPTION_MAX = 200


class WebhookError(ValidationFailed):
    pass


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for (``host``, ``path``)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def allow_private(config=None) -> bool:
    config = config if config is not None else current_app.config
    return str(config.get("WEBHOOK_ALLOW_PRIVATE_URLS", "")).lower() in ("1", "true", "yes")


def _public(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT))


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def check_url(url: str, *, private_ok: bool, resolve=socket.getaddrinfo) -> Target:
    """Parse and check a webhook URL; raises :class:`WebhookError` (field ``url``) with the reason."""
    url = (url or "").strip()
    if not url:
        raise WebhookError("Enter the URL to send events to.", field="url")
    if len(url) > URL_MAX:
        raise WebhookError(f"Keep the URL under {URL_MAX} characters.", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookError(f"That is not a valid URL ({exc}).", field="url") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookError("The URL must start with https:// (or http://).", field="url")
    if not parts.hostname:
        raise WebhookError("The URL needs a host name.", field="url")
    if parts.username or parts.password:
        raise WebhookError("Put no user name or password in the URL; verify the signature instead.", field="url")
    if parts.fragment:
        raise WebhookError("Leave out the #fragment: it is never sent.", field="url")
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise WebhookError(f"The host {host!r} could not be found.", field="url") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookError(f"The host {host!r} could not be found.", field="url")
    if not private_ok and not all(_public(a) for a in addresses):
        raise WebhookError("That address is on a private or local network; webhooks go to public addresses only.",
                           field="url")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _events(values) -> list[str]:
    if isinstance(values, str) or not isinstance(values, list | tuple) or not values:
        raise WebhookError("Choose at least one event.", field="events")
    chosen = []
    for v in values:
        if not isinstance(v, str) or v not in EVENT_TYPES or v == "webhook.test":
            raise WebhookError(f"Unknown event type {v!r}. Known: {', '.join(k for k in EVENT_TYPES if k != 'webhook.test')}.",
                               field="events")
        if v not in chosen:
            chosen.append(v)
    return chosen


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def secret_of(endpoint: WebhookEndpoint) -> str:
    return decrypt_field(endpoint.secret_encrypted) or ""


def create_endpoint(*, url: str, events, description: str = "", actor: Actor, now: datetime | None = None,
                    ctx: RequestContext | None = None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown once)."""
    now = now or now_utc()
    errors: dict[str, list[str]] = {}
    for check in (lambda: check_url(url, private_ok=allow_private()), lambda: _events(events)):
        try:
            check()
        except WebhookError as exc:
            errors.update(exc.errors or {})
    description = (description or "").strip() if isinstance(description, str) else None
    if description is None:
        errors["description"] = ["The description must be text."]
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = [f"Keep the description under {DESCRIPTION_MAX} characters."]
    if errors:
        raise WebhookError("Check the webhook endpoint.", errors=errors)
    raw = new_secret()
    ep = WebhookEndpoint(url=url.strip(), events=_events(events), description=description,
                         secret_encrypted=encrypt_field(raw), enabled=True, consecutive_failures=0,
                         created_by_id=actor.id, created_at=now, updated_at=now)
    db.session.add(ep)
    db.session.flush()
    audit.record("webhook_endpoint.created", actor=actor, object_type="webhook_endpoint", object_id=ep.id,
                 details={"url": ep.url, "events": ep.events}, ctx=ctx, now=now)
    return ep, raw


def live_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
                                   .order_by(WebhookEndpoint.id)))


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    ep = db.session.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.deleted_at is not None:
        raise NotFound("No such webhook endpoint.")
    return ep


def _locked_endpoint(endpoint_id: int) -> WebhookEndpoint:
    ep = db.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update())
    if ep is None or ep.deleted_at is not None:
        raise NotFound("No such webhook endpoint.")
    return ep


def _give_up_pending(endpoint_id: int, reason: str, now: datetime) -> None:
    for d in db.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]))):
        d.status = DeliveryStatus.FAILED.value
        d.last_error = reason
        d.lease_until = d.leased_by = None
        d.updated_at = now


def delete_endpoint(endpoint_id: int, *, actor: Actor, now: datetime | None = None,
                    ctx: RequestContext | None = None) -> WebhookEndpoint:
    """Stop sending to it (kept, with its log, for the audit trail). Pending deliveries are dropped."""
    now = now or now_utc()
    ep = _locked_endpoint(endpoint_id)
    ep.deleted_at = now
    ep.enabled = False
    ep.updated_at = now
    _give_up_pending(ep.id, "the endpoint was deleted", now)
    audit.record("webhook_endpoint.deleted", actor=actor, object_type="webhook_endpoint", object_id=ep.id,
                 details={"url": ep.url}, ctx=ctx, now=now)
    return ep


def enable_endpoint(endpoint_id: int, *, actor: Actor, now: datetime | None = None,
                    ctx: RequestContext | None = None) -> WebhookEndpoint:
    now = now or now_utc()
    ep = _locked_endpoint(endpoint_id)
    if not ep.enabled:
        ep.enabled, ep.disabled_at, ep.disabled_reason, ep.consecutive_failures = True, None, None, 0
        ep.updated_at = now
        audit.record("webhook_endpoint.enabled", actor=actor, object_type="webhook_endpoint", object_id=ep.id,
                     ctx=ctx, now=now)
    return ep


def disable_endpoint(endpoint_id: int, *, reason: str, actor: Actor | None = None,
                     now: datetime | None = None, ctx: RequestContext | None = None) -> WebhookEndpoint:
    now = now or now_utc()
    ep = _locked_endpoint(endpoint_id)
    if ep.enabled:
        ep.enabled, ep.disabled_at, ep.disabled_reason = False, now, reason[:300]
        ep.updated_at = now
        _give_up_pending(ep.id, "the endpoint was disabled", now)
        audit.record("webhook_endpoint.disabled", actor=actor, object_type="webhook_endpoint", object_id=ep.id,
                     details={"reason": reason[:300]}, ctx=ctx, now=now)
    return ep


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def _check_data(data: dict) -> dict:
    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                if str(k).lower() in _CLINICAL_KEYS:
                    raise ValueError(f"webhook data may not carry {path}{k!r} (clinical)")
                walk(v, f"{path}{k}.")
        elif isinstance(value, list):
            for v in value:
                walk(v, path)
    walk(data, "")
    json.dumps(data)  # plain JSON only
    return data


def _delivery(event: WebhookEvent, ep: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(event_id=event.id, endpoint_id=ep.id, status=DeliveryStatus.PENDING.value, attempts=0,
                           next_attempt_at=now, give_up_at=now + RETRY_FOR, created_at=now, updated_at=now)


def emit(type_: str, data: dict, *, now: datetime | None = None) -> WebhookEvent | None:
    """Record an event and queue a delivery to each enabled endpoint that subscribed to it, in the
    caller's transaction. Returns None (and writes nothing) when nobody subscribed."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type_!r}")
    now = now or now_utc()
    endpoints = [ep for ep in db.session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))) if type_ in (ep.events or [])]
    if not endpoints:
        return None
    event = WebhookEvent(public_id=f"evt_{secrets.token_hex(12)}", type=type_, created_at=now,
                         data=_check_data(dict(data)))
    db.session.add(event)
    db.session.flush()
    db.session.add_all([_delivery(event, ep, now) for ep in endpoints])
    db.session.flush()
    return event


def send_test(endpoint_id: int, *, actor: Actor, now: datetime | None = None,
              ctx: RequestContext | None = None) -> WebhookDelivery:
    """Queue a ``webhook.test`` event to this endpoint only (it need not subscribe to anything)."""
    now = now or now_utc()
    ep = get_endpoint(endpoint_id)
    event = WebhookEvent(public_id=f"evt_{secrets.token_hex(12)}", type="webhook.test", created_at=now,
                         data={"endpoint_id": ep.id, "message": "This is a test event from retreat."})
    db.session.add(event)
    db.session.flush()
    d = _delivery(event, ep, now)
    db.session.add(d)
    db.session.flush()
    audit.record("webhook_endpoint.test_sent", actor=actor, object_type="webhook_endpoint", object_id=ep.id,
                 ctx=ctx, now=now)
    return d


def redeliver(delivery_id: int, *, actor: Actor, now: datetime | None = None,
              ctx: RequestContext | None = None) -> WebhookDelivery:
    """Send a delivery again now (same event id and body); for 24 more hours if it fails again."""
    now = now or now_utc()
    d = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update())
    if d is None or d.endpoint.deleted_at is not None:
        raise NotFound("No such delivery.")
    if not d.endpoint.enabled:
        raise WebhookError("Turn the endpoint back on before redelivering.", field="endpoint")
    if d.status in (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value):
        return d  # already on its way: asking twice sends it once
    d.status, d.next_attempt_at, d.give_up_at = DeliveryStatus.PENDING.value, now, now + RETRY_FOR
    d.lease_until = d.leased_by = None
    d.updated_at = now
    audit.record("webhook_delivery.redelivered", actor=actor, object_type="webhook_delivery", object_id=d.id,
                 details={"event": d.event.public_id}, ctx=ctx, now=now)
    return d


def body_of(event: WebhookEvent) -> bytes:
    """The exact bytes POSTed, the same on every attempt."""
    payload = {"id": event.public_id, "type": event.type, "created": int(event.created_at.timestamp()),
               "data": event.data or {}}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests and shown in the README)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, t, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def next_delay(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF[attempts - 1] if attempts - 1 < len(BACKOFF) else BACKOFF[-1])


# --------------------------------------------------------------------------------------------
# Reading (admin pages, API)
# --------------------------------------------------------------------------------------------


def deliveries(endpoint_id: int, *, limit: int = 50) -> list[WebhookDelivery]:
    from sqlalchemy.orm import joinedload

    return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                                   .options(joinedload(WebhookDelivery.event))
                                   .order_by(WebhookDelivery.id.desc()).limit(limit)))


def attempts(delivery_id: int) -> list[WebhookAttempt]:
    return list(db.session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
                                   .order_by(WebhookAttempt.id)))
