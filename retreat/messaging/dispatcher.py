"""The outbox dispatcher: claim due rows, render, send, mark. Time is injected (``now``).

One pass (``dispatch_due``) repeats until nothing is due:

1. **Claim** a batch in one short transaction. PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``
   over due rows, then ``status=sending``, ``lease_until``/``leased_by`` and ``attempts+1`` before
   COMMIT, so concurrent dispatchers never claim the same row. SQLite: the transaction starts
   with ``BEGIN IMMEDIATE`` (see ``retreat/__init__.py``), so one dispatcher claims at a time.
   "Due" means ``status in (pending, sending) and next_attempt_at <= now``: a claim sets
   ``next_attempt_at`` to the lease expiry, so a row left in ``sending`` by a killed dispatcher
   becomes due again when its lease runs out and is reclaimed by the same query.
   Non-essential rows are checked here: opted-out recipients -> ``cancelled`` with the reason;
   quiet hours (21:00-08:00 in the recipient's zone) -> ``next_attempt_at`` = 08:00 local.
2. **Send** each claimed message with no transaction open (no lock held during SMTP).
3. **Mark** each message right after its send in its own short transaction: ``sent``; or, for a
   temporary failure, ``pending`` again with exponential backoff (``failed`` after
   ``OUTBOX_MAX_ATTEMPTS``, except while the SMTP server cannot be reached at all: those wait
   out the outage); or ``failed`` at once for a permanent one (unknown template,
   invalid address, SMTP 5xx), with ``last_error``. The batch always continues.

A crash between the SMTP server's acceptance and step 3 makes that one message go out again
after the lease expires; it carries the same ``Message-ID`` (derived from the row), so the
duplicate is recognisable.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time as time_
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from jinja2 import TemplateError
from sqlalchemy import select, update

from retreat.core import jobs, urls
from retreat.extensions import db
from retreat.messaging import links
from retreat.messaging import unsubscribe as preferences
from retreat.messaging.ics import IcsError, build_calendar
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.messaging.render import UnknownTemplate, render_email
from retreat.messaging.sealed import opened
from retreat.messaging.transport import (
    SendError,
    ServerUnavailable,
    mail_domain,
    message_id,
    transport_from_config,
)
from retreat.timeutil import now_utc, zone

log = logging.getLogger("retreat.dispatcher")

QUIET_START = time(21, 0)
QUIET_END = time(8, 0)
DEFAULT_BATCH_SIZE = 50
DEFAULT_MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 60
BACKOFF_CAP_SECONDS = 6 * 3600
OPTED_OUT_REASON = "recipient opted out of non-essential messages"

_PENDING, _SENDING = OutboxStatus.PENDING.value, OutboxStatus.SENDING.value


class PermanentFailure(Exception):
    """This message can never be sent as it is (bad template, address, calendar data)."""


@dataclass(frozen=True)
class Claimed:
    """A plain snapshot of a claimed row, used while no transaction is open."""

    id: int
    dedupe_key: str
    template: str
    context: dict
    ics: dict | None
    essential: bool
    email: str
    name: str | None
    tz: str
    attempts: int
    private: str | None = None  # sealed capability links, decrypted only to render
    link_origin: str | None = None  # BASE_URL when queued: its links are rebased onto today's


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"sent {self.sent}, retry later {self.retried}, failed {self.failed}, "
                f"cancelled {self.cancelled}, deferred (quiet hours) {self.deferred}")


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def quiet_until(now: datetime, tz_name: str | None) -> datetime | None:
    """If ``now`` falls in the recipient's quiet hours, the UTC instant of the next 08:00 local."""
    tz = zone(tz_name)
    local = now.astimezone(tz)
    if local.time() >= QUIET_START:
        day = local.date() + timedelta(days=1)
    elif local.time() < QUIET_END:
        day = local.date()
    else:
        return None
    return datetime.combine(day, QUIET_END, tzinfo=tz).astimezone(now.tzinfo)


def backoff(attempts: int, config=None) -> timedelta:
    """Delay before the next try after ``attempts`` tries: 1, 2, 4, 8 ... minutes, at most 6 hours.

    ``OUTBOX_BACKOFF_BASE_SECONDS`` / ``OUTBOX_BACKOFF_CAP_SECONDS`` change the unit and the cap
    (``bench/faults.py smtp-down`` compresses minutes into seconds with them).
    """
    config = config or {}
    base = int(config.get("OUTBOX_BACKOFF_BASE_SECONDS") or BACKOFF_BASE_SECONDS)
    cap = int(config.get("OUTBOX_BACKOFF_CAP_SECONDS") or BACKOFF_CAP_SECONDS)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def default_worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{threading.get_ident() % 100000}"


def lease_seconds(config, batch_size: int) -> int:
    """Long enough for a whole batch of slow sends, so a live dispatcher keeps its rows."""
    configured = int(config.get("OUTBOX_LEASE_SECONDS") or 0)
    return configured or max(300, batch_size * int(config.get("SMTP_TIMEOUT", 20)) + 60)


# --------------------------------------------------------------------------------------------
# Claim
# --------------------------------------------------------------------------------------------


def claim_batch(now: datetime, *, worker: str, batch_size: int, lease: timedelta,
                max_attempts: int, result: DispatchResult) -> tuple[list[Claimed], int]:
    """Claim up to ``batch_size`` due rows; returns the claimed snapshots and how many rows were due."""
    session = db.session
    try:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.status.in_([_PENDING, _SENDING]), OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed: list[Claimed] = []
        rows = session.scalars(stmt).all()
        for row in rows:
            row.updated_at = now
            if row.status == _SENDING and row.attempts >= max_attempts:
                _set_failed(row, f"the dispatcher stopped while sending, {row.attempts} times", result)
                continue
            if not row.essential:
                if preferences.opted_out(user_id=row.recipient_user_id, email=row.recipient_email):
                    row.status = OutboxStatus.CANCELLED.value
                    row.cancelled_at = now
                    row.private_enc = None
                    row.last_error = OPTED_OUT_REASON
                    row.lease_until = row.leased_by = None
                    result.cancelled += 1
                    continue
                morning = quiet_until(now, row.recipient_tz)
                if morning is not None:
                    row.status = _PENDING
                    row.next_attempt_at = morning
                    row.lease_until = row.leased_by = None
                    result.deferred += 1
                    continue
            row.status = _SENDING
            row.attempts = (row.attempts or 0) + 1
            row.lease_until = row.next_attempt_at = now + lease
            row.leased_by = worker
            claimed.append(Claimed(
                id=row.id, dedupe_key=row.dedupe_key, template=row.template,
                context=dict(row.context or {}), ics=dict(row.ics) if row.ics else None,
                essential=bool(row.essential), email=row.recipient_email, name=row.recipient_name,
                tz=row.recipient_tz or "UTC", attempts=row.attempts, private=row.private_enc,
                link_origin=row.link_origin,
            ))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    result.claimed += len(claimed)
    return claimed, len(rows)


def _set_failed(row: OutboxMessage, reason: str, result: DispatchResult) -> None:
    row.status = OutboxStatus.FAILED.value
    row.last_error = reason[:2000]
    row.lease_until = row.leased_by = None
    result.failed += 1


# --------------------------------------------------------------------------------------------
# Build and send
# --------------------------------------------------------------------------------------------


def build_message(m: Claimed, *, now: datetime, config) -> Message:
    """Render and assemble one email; raises :class:`PermanentFailure` for unsendable input.

    Built with the classic MIME classes: they produce the same RFC 5322 output as
    ``EmailMessage`` at a fraction of the CPU (the dispatcher's main cost per message).
    """
    try:
        address = validate_email(m.email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PermanentFailure(f"invalid recipient address {m.email!r}: {exc}") from exc
    base = urls.base_url()
    unsubscribe = None
    if not m.essential:
        unsubscribe = preferences.unsubscribe_url(m.email, secret=config["SECRET_KEY"], base_url=base)
    context, invite_spec = opened(m.context, m.ics, m.private)
    # Links written under the BASE_URL of the time it was queued point at today's (messaging.links).
    context, invite_spec = links.rebase(context, m.link_origin, base), links.rebase(invite_spec, m.link_origin, base)
    try:
        rendered = render_email(m.template, context, recipient_tz=m.tz, recipient_name=m.name,
                                unsubscribe_url=unsubscribe)
    except UnknownTemplate as exc:
        raise PermanentFailure(str(exc)) from exc
    except TemplateError as exc:
        raise PermanentFailure(f"email template {m.template!r} failed: {exc}") from exc

    body: Message = MIMEText(rendered.text, "plain", _UTF8_QP)
    if rendered.html:
        body = MIMEMultipart("alternative", _subparts=[body, MIMEText(rendered.html, "html", _UTF8_QP)])
    if invite_spec:
        method = str(invite_spec.get("method") or "REQUEST").upper()
        try:
            ics = build_calendar(invite_spec, stamp=now).decode("utf-8")
        except (IcsError, KeyError, TypeError, ValueError) as exc:
            raise PermanentFailure(f"invalid calendar invite: {exc}") from exc
        invite = MIMEText(ics, "calendar", _UTF8_QP)
        invite.set_param("method", method)
        invite.add_header("Content-Disposition", "attachment", filename="invite.ics")
        body = MIMEMultipart("mixed", _subparts=[body, invite])

    body["From"] = _address_header(*parseaddr(config["MAIL_FROM"]))
    body["To"] = _address_header(m.name or "", address)
    body["Subject"] = _text_header(rendered.subject)
    body["Date"] = format_datetime(now)
    body["Message-ID"] = message_id(m.id, m.dedupe_key, mail_domain(config["MAIL_FROM"]))
    body["Auto-Submitted"] = "auto-generated"
    if unsubscribe:
        body["List-Unsubscribe"] = f"<{unsubscribe}>"
        body["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    body.policy = _HEADER_POLICY
    return body


# Keep the (long) List-Unsubscribe URL on one line; 998 is RFC 5322's line limit.
_HEADER_POLICY = compat32.clone(max_line_length=998)
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _one_line(value: str) -> str:
    return " ".join(str(value).split())  # no CR/LF: no header injection


def _text_header(value: str) -> str:
    value = _one_line(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address_header(name: str, address: str) -> str:
    return formataddr((_one_line(name), address), charset="utf-8") if name else address


# --------------------------------------------------------------------------------------------
# Mark
# --------------------------------------------------------------------------------------------


def _mark(message_id_: int, values: dict, *, statuses: tuple[str, ...], worker: str | None = None) -> bool:
    stmt = update(OutboxMessage).where(OutboxMessage.id == message_id_, OutboxMessage.status.in_(statuses))
    if worker is not None:
        stmt = stmt.where(OutboxMessage.leased_by == worker)
    try:
        done = db.session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return bool(done)


def _mark_sent(m: Claimed, now: datetime) -> None:
    # Whoever holds the lease now, the message did go out: record it.
    # Its sealed links now live in the email only (a duplicate send uses its own claimed snapshot).
    _mark(m.id, dict(status=OutboxStatus.SENT.value, sent_at=now, lease_until=None, leased_by=None,
                     last_error=None, updated_at=now, private_enc=None),
          statuses=(_SENDING, _PENDING, OutboxStatus.FAILED.value))


def _mark_failure(m: Claimed, now: datetime, reason: str, *, permanent: bool, worker: str,
                  max_attempts: int, result: DispatchResult, server_down: bool = False) -> None:
    reason = reason[:2000]
    # An unreachable server says nothing about this message: it waits out the outage (the
    # backoff grows to its cap) rather than failing after max_attempts tries of a dead server.
    if permanent or (m.attempts >= max_attempts and not server_down):
        if not permanent:
            reason = f"gave up after {m.attempts} attempts: {reason}"
        values = dict(status=OutboxStatus.FAILED.value, last_error=reason, lease_until=None,
                      leased_by=None, updated_at=now)
        if _mark(m.id, values, statuses=(_SENDING,), worker=worker):
            result.failed += 1
        log.warning("outbox %s failed: %s", m.id, reason)
    else:
        values = dict(status=_PENDING, last_error=reason, next_attempt_at=now + backoff(m.attempts, current_app.config),
                      lease_until=None, leased_by=None, updated_at=now)
        if _mark(m.id, values, statuses=(_SENDING,), worker=worker):
            result.retried += 1
        log.info("outbox %s will be retried (attempt %s): %s", m.id, m.attempts, reason)
    result.errors.append(f"{m.id}: {reason}")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def dispatch_due(now: datetime | None = None, *, batch_size: int | None = None,
                 max_batches: int | None = None, worker: str | None = None, transport=None,
                 should_stop: Callable[[], bool] | None = None) -> DispatchResult:
    """Send everything due at ``now`` (default: the clock, read per batch). Needs an app context.

    ``should_stop`` is checked between batches: a shutting-down scheduler finishes the current
    batch and returns.
    """
    config = current_app.config
    batch_size = batch_size or int(config.get("OUTBOX_BATCH_SIZE") or DEFAULT_BATCH_SIZE)
    max_attempts = int(config.get("OUTBOX_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)
    lease = timedelta(seconds=lease_seconds(config, batch_size))
    worker = (worker or default_worker_id())[:64]
    transport = transport or transport_from_config(config)
    result = DispatchResult()
    while not (should_stop and should_stop()):
        at = now or now_utc()
        batch, due = claim_batch(at, worker=worker, batch_size=batch_size, lease=lease,
                                 max_attempts=max_attempts, result=result)
        if not due:
            break
        result.batches += 1
        if batch:
            started, before = time_.perf_counter(), (result.sent, result.retried, result.failed)
            log.info("outbox batch %s started by %s: %s claimed of %s due", result.batches, worker, len(batch), due)
            with transport.open() as conn:
                for m in batch:
                    _send_one(conn, m, at, config, worker, max_attempts, result)
            sent, retried, failed = (now_ - then for now_, then in zip((result.sent, result.retried, result.failed),
                                                                       before, strict=True))
            log.info("outbox batch %s done in %.3fs: sent %s, retry later %s, failed %s", result.batches,
                     time_.perf_counter() - started, sent, retried, failed)
        if max_batches and result.batches >= max_batches:
            break
    return result


def _send_one(conn, m: Claimed, now: datetime, config, worker: str, max_attempts: int,
              result: DispatchResult) -> None:
    try:
        msg = build_message(m, now=now, config=config)
        conn.send(msg, outbox_id=m.id)
    except PermanentFailure as exc:
        _mark_failure(m, now, str(exc), permanent=True, worker=worker, max_attempts=max_attempts, result=result)
    except SendError as exc:
        _mark_failure(m, now, str(exc), permanent=exc.permanent, worker=worker,
                      max_attempts=max_attempts, result=result, server_down=isinstance(exc, ServerUnavailable))
    except Exception as exc:  # a bug must not stop the batch: retried, then failed
        log.exception("outbox %s: unexpected error", m.id)
        _mark_failure(m, now, f"{type(exc).__name__}: {exc}", permanent=False, worker=worker,
                      max_attempts=max_attempts, result=result)
    else:
        _mark_sent(m, now)
        result.sent += 1


def dispatch_job(now: datetime) -> None:
    """The scheduler's job: send what is due, finishing the current batch when shutdown starts."""
    result = dispatch_due(should_stop=jobs.stopping)
    if result.claimed or result.cancelled or result.deferred:
        logging.getLogger("retreat.scheduler").info("outbox: %s", result)


jobs.register("outbox.dispatch", dispatch_job)
