"""Sends due webhook deliveries: claim, POST, record. The same shape as the email dispatcher.

1. **Claim** due rows in one short transaction (PostgreSQL ``FOR UPDATE SKIP LOCKED``): status
   ``sending``, a lease, ``attempts + 1``. A row left ``sending`` by a killed dispatcher is due
   again when its lease ends and is claimed again: the receiver may see it twice, always with the
   same event id (``evt_...``), which is how it recognises the duplicate.
2. **POST** with no transaction open: the body is the event's fixed bytes, signed for this
   attempt; connected to the address the URL check approved (no DNS rebinding), redirects not
   followed, short timeouts.
3. **Record** the attempt (status code or error, duration) and mark the delivery: ``delivered``
   on a 2xx; otherwise ``pending`` again after 1 min, 5 min, 30 min, 1 h, then every 2 h, until
   24 hours after the event; then ``failed``, and the endpoint is disabled (its admins are
   emailed through ``core.signals.webhook_endpoint_disabled``).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from retreat.core import jobs, signals
from retreat.extensions import db
from retreat.messaging import webhooks
from retreat.messaging.dispatcher import default_worker_id
from retreat.messaging.webhook_models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from retreat.timeutil import now_utc

log = logging.getLogger("retreat.webhooks")

_PENDING, _SENDING = DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value
DEFAULT_TIMEOUT = 5.0
DEFAULT_BATCH = 50
USER_AGENT = "retreat-webhooks/1"


@dataclass(frozen=True)
class Claimed:
    id: int
    endpoint_id: int
    url: str
    secret: str
    body: bytes
    event_id: str
    attempts: int
    give_up_at: datetime


@dataclass
class Result:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    disabled: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"delivered {self.delivered}, retry later {self.retried}, failed {self.failed}"


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with the URL's host for SNI and certificate checks."""

    def __init__(self, host, port, address, **kw):
        super().__init__(host, port, context=ssl.create_default_context(), **kw)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, address, **kw):
        super().__init__(host, port, **kw)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, private_ok: bool) -> int:
    """POST once; returns the status code. Raises OSError/HTTPException/WebhookError on failure."""
    target = webhooks.check_url(url, private_ok=private_ok)
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(target.host, target.port, target.address, timeout=timeout)
    try:
        conn.request("POST", target.path, body=body, headers={
            **headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "Content-Length": str(len(body))})
        resp = conn.getresponse()
        resp.read(64 * 1024)  # drain a little; the body is not used
        return resp.status
    finally:
        conn.close()


def claim(now: datetime, *, worker: str, batch: int, lease: timedelta) -> list[Claimed]:
    session = db.session
    try:
        stmt = (select(WebhookDelivery)
                .where(WebhookDelivery.status.in_([_PENDING, _SENDING]), WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(batch))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
        out = []
        for d in session.scalars(stmt).all():
            ep = d.endpoint
            if not ep.enabled or ep.deleted_at is not None:
                d.status, d.last_error = DeliveryStatus.FAILED.value, "the endpoint is disabled"
                d.lease_until = d.leased_by = None
                continue
            d.status = _SENDING
            d.attempts = (d.attempts or 0) + 1
            d.lease_until = d.next_attempt_at = now + lease
            d.leased_by = worker
            d.updated_at = now
            out.append(Claimed(id=d.id, endpoint_id=ep.id, url=ep.url, secret=webhooks.secret_of(ep),
                               body=webhooks.body_of(d.event), event_id=d.event.public_id, attempts=d.attempts,
                               give_up_at=d.give_up_at))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return out


def _record(c: Claimed, *, now: datetime, status_code: int | None, error: str | None, duration_ms: int,
            worker: str, result: Result) -> None:
    session = db.session
    try:
        session.add(WebhookAttempt(delivery_id=c.id, at=now, status_code=status_code, error=(error or None) and error[:500],
                                   duration_ms=duration_ms))
        ok = status_code is not None and 200 <= status_code < 300
        values: dict = dict(last_status_code=status_code, last_error=None if ok else (error or f"HTTP {status_code}")[:500],
                            lease_until=None, leased_by=None, updated_at=now)
        gave_up = False
        if ok:
            values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
        elif now + webhooks.next_delay(c.attempts) > c.give_up_at:
            values.update(status=DeliveryStatus.FAILED.value)
            gave_up = True
        else:
            values.update(status=_PENDING, next_attempt_at=now + webhooks.next_delay(c.attempts))
        # Whoever holds the lease now, this attempt happened: a success is recorded whatever the state.
        stmt = update(WebhookDelivery).where(WebhookDelivery.id == c.id)
        if not ok:
            stmt = stmt.where(WebhookDelivery.status == _SENDING, WebhookDelivery.leased_by == worker)
        done = session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
        ep = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == c.endpoint_id).with_for_update())
        if ok:
            ep.consecutive_failures, ep.last_success_at = 0, now
            result.delivered += 1
        elif done:
            ep.consecutive_failures = (ep.consecutive_failures or 0) + 1
            if gave_up:
                result.failed += 1
                if ep.enabled and ep.deleted_at is None:
                    reason = (f"Deliveries failed for {int(webhooks.RETRY_FOR.total_seconds() // 3600)} hours "
                              f"(last: {values['last_error']})")
                    webhooks.disable_endpoint(ep.id, reason=reason, now=now)
                    signals.webhook_endpoint_disabled.send(ep, now=now, reason=reason)
                    result.disabled.append(ep.id)
            else:
                result.retried += 1
        session.commit()
    except BaseException:
        session.rollback()
        raise


def deliver_due(now: datetime | None = None, *, worker: str | None = None, batch: int | None = None,
                should_stop: Callable[[], bool] | None = None, max_batches: int | None = None) -> Result:
    config = current_app.config
    timeout = float(config.get("WEBHOOK_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT)
    batch = batch or int(config.get("WEBHOOK_BATCH_SIZE") or DEFAULT_BATCH)
    lease = timedelta(seconds=int(config.get("WEBHOOK_LEASE_SECONDS") or (batch * 2 * timeout + 60)))
    private_ok = webhooks.allow_private(config)
    worker = (worker or default_worker_id())[:64]
    result, batches = Result(), 0
    while not (should_stop and should_stop()):
        at = now or now_utc()
        claimed = claim(at, worker=worker, batch=batch, lease=lease)
        if not claimed:
            break
        batches += 1
        result.claimed += len(claimed)
        for c in claimed:
            ts = int(time.time()) if now is None else int(at.timestamp())
            headers = {"Retreat-Signature": webhooks.signature(c.secret, ts, c.body),
                       "Retreat-Event-Id": c.event_id}
            started = time.monotonic()
            code, error = None, None
            try:
                code = post(c.url, c.body, headers, timeout=timeout, private_ok=private_ok)
                if 300 <= code < 400:
                    error = f"HTTP {code}: redirects are not followed"
            except webhooks.WebhookError as exc:
                error = exc.message
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            duration = int((time.monotonic() - started) * 1000)
            _record(c, now=now or now_utc(), status_code=code, error=error, duration_ms=duration,
                    worker=worker, result=result)
        if max_batches and batches >= max_batches:
            break
    return result


def deliver_job(now: datetime) -> None:
    result = deliver_due(should_stop=jobs.stopping)
    if result.claimed:
        log.info("webhooks: %s", result)


jobs.register("webhooks.deliver", deliver_job)
