"""Sends due SMS: claim, send, mark — the email dispatcher's shape (``messaging.dispatcher``).

1. **Claim** due rows in one short transaction (PostgreSQL ``FOR UPDATE SKIP LOCKED``): status
   ``sending``, a lease (``next_attempt_at`` = lease end, so a row left by a killed dispatcher is
   due again), ``attempts + 1``. Reminders (non-essential) are checked here: past
   ``stale_after`` -> cancelled; recipient opted out of non-essential messages -> cancelled;
   quiet hours (21:00-08:00 in the recipient's zone) -> moved to 08:00 local.
2. **Send** with no transaction open (no lock held during the provider's HTTP call).
3. **Mark**: ``sent`` with the provider's message id; a temporary failure -> ``pending`` again
   after 1, 2, 4... minutes (``failed`` after ``SMS_MAX_ATTEMPTS``); a permanent one -> ``failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select, update

from retreat.core import jobs
from retreat.core.crypto import decrypt_field
from retreat.extensions import db
from retreat.messaging import sms_outbox
from retreat.messaging import unsubscribe as preferences
from retreat.messaging.dispatcher import DispatchResult as Result  # one result shape for both outboxes
from retreat.messaging.dispatcher import backoff, default_worker_id, quiet_until
from retreat.messaging.sealed import unseal
from retreat.messaging.sms_models import SmsMessage, SmsStatus
from retreat.messaging.sms_transport import transport_from_config
from retreat.messaging.transport import SendError
from retreat.timeutil import now_utc

log = logging.getLogger("retreat.sms")

DEFAULT_BATCH = 50
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_LEASE_SECONDS = 300
_PENDING, _SENDING = SmsStatus.PENDING.value, SmsStatus.SENDING.value


@dataclass(frozen=True)
class Claimed:
    id: int
    to: str
    body: str
    attempts: int




def _cancel(row: SmsMessage, now: datetime, reason: str, result: Result) -> None:
    row.status, row.cancelled_at, row.private_enc, row.last_error = SmsStatus.CANCELLED.value, now, None, reason
    row.lease_until = row.leased_by = None
    result.cancelled += 1


def _first_to(row: SmsMessage) -> bool:
    """No message to this number has gone out yet: this one says how to opt out."""
    return not db.session.scalar(select(exists().where(SmsMessage.to_hash == row.to_hash,
                                                       SmsMessage.status == SmsStatus.SENT.value)))


def claim(now: datetime, *, worker: str, batch: int, lease: timedelta, result: Result) -> tuple[list[Claimed], int]:
    session = db.session
    try:
        stmt = (select(SmsMessage).where(SmsMessage.status.in_([_PENDING, _SENDING]), SmsMessage.next_attempt_at <= now)
                .order_by(SmsMessage.next_attempt_at, SmsMessage.id).limit(batch))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.scalars(stmt).all()
        out: list[Claimed] = []
        noticed: set[str] = set()  # numbers told how to opt out in this batch already
        for row in rows:
            row.updated_at = now
            if not row.essential:
                if row.stale_after is not None and now >= row.stale_after:
                    _cancel(row, now, "too late: the event it reminds of has started", result)
                    continue
                if row.recipient_user_id and preferences.opted_out(user_id=row.recipient_user_id, email=""):
                    _cancel(row, now, "recipient opted out of non-essential messages", result)
                    continue
                morning = quiet_until(now, row.recipient_tz)
                if morning is not None:
                    if row.stale_after is not None and morning >= row.stale_after:
                        _cancel(row, now, "quiet hours last until after the event", result)
                        continue
                    row.status, row.next_attempt_at = _PENDING, morning
                    row.lease_until = row.leased_by = None
                    result.deferred += 1
                    continue
            try:
                body = sms_outbox.render(row.template, row.context or {}, unseal(row.private_enc)[0],
                                         tz=row.recipient_tz,
                                         first=row.to_hash not in noticed and _first_to(row))
            except (KeyError, ValueError) as exc:
                row.status, row.last_error = SmsStatus.FAILED.value, f"cannot render {row.template!r}: {exc}"[:500]
                row.lease_until = row.leased_by = None
                result.failed += 1
                continue
            noticed.add(row.to_hash)
            row.status = _SENDING
            row.attempts = (row.attempts or 0) + 1
            row.lease_until = row.next_attempt_at = now + lease
            row.leased_by = worker
            out.append(Claimed(id=row.id, to=decrypt_field(row.to_number_enc), body=body, attempts=row.attempts))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    result.claimed += len(out)
    return out, len(rows)


def _mark(sms_id: int, values: dict, *, worker: str | None) -> bool:
    stmt = update(SmsMessage).where(SmsMessage.id == sms_id)
    stmt = stmt.where(SmsMessage.status == _SENDING, SmsMessage.leased_by == worker) if worker else \
        stmt.where(SmsMessage.status.in_([_SENDING, _PENDING, SmsStatus.FAILED.value]))
    try:
        done = db.session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return bool(done)


def send_due(now: datetime | None = None, *, worker: str | None = None, batch: int | None = None, transport=None,
             should_stop: Callable[[], bool] | None = None, max_batches: int | None = None) -> Result:
    """Send every SMS due at ``now`` (default: the clock, read per batch). Needs an app context."""
    config = current_app.config
    batch = batch or int(config.get("SMS_BATCH_SIZE") or DEFAULT_BATCH)
    max_attempts = int(config.get("SMS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)
    lease = timedelta(seconds=int(config.get("SMS_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS))
    worker = (worker or default_worker_id())[:64]
    transport = transport or transport_from_config(config)
    result, batches = Result(), 0
    while not (should_stop and should_stop()):
        at = now or now_utc()
        claimed, due = claim(at, worker=worker, batch=batch, lease=lease, result=result)
        if not due:
            break
        batches += 1
        for c in claimed:
            try:
                sid = transport.send(to=c.to, body=c.body, sms_id=c.id)
            except SendError as exc:
                reason = str(exc)[:500]
                if exc.permanent or c.attempts >= max_attempts:
                    values = dict(status=SmsStatus.FAILED.value, last_error=reason if exc.permanent else
                                  f"gave up after {c.attempts} attempts: {reason}"[:500])
                    counter = "failed"
                else:
                    values = dict(status=_PENDING, last_error=reason,
                                  next_attempt_at=at + backoff(c.attempts, {"OUTBOX_BACKOFF_BASE_SECONDS": config.get(
                                      "SMS_BACKOFF_BASE_SECONDS") or config.get("OUTBOX_BACKOFF_BASE_SECONDS")}))
                    counter = "retried"
                if _mark(c.id, dict(values, lease_until=None, leased_by=None, updated_at=at), worker=worker):
                    setattr(result, counter, getattr(result, counter) + 1)
                log.warning("sms %s %s: %s", c.id, "failed" if counter == "failed" else "will be retried", reason)
            else:
                # Whoever holds the lease now, the provider accepted it: record it (the code is gone).
                _mark(c.id, dict(status=SmsStatus.SENT.value, sent_at=at, provider_message_id=sid or None,
                                 last_error=None, lease_until=None, leased_by=None, private_enc=None, updated_at=at),
                      worker=None)
                result.sent += 1
        if max_batches and batches >= max_batches:
            break
    return result


def send_job(now: datetime) -> None:
    result = send_due(should_stop=jobs.stopping)
    if result.claimed or result.cancelled or result.deferred:
        log.info("sms: %s", result)


jobs.register("sms.send", send_job)
