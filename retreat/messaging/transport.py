"""Email transports: SMTP (production) and ``.eml`` files under ``instance/outbox/`` (default).

A transport is opened once per dispatcher batch (``with transport.open() as conn:``) and sends
one :class:`email.message.Message` at a time. Failures are classified:

* :class:`PermanentSendError`: the server rejected the message or address with a 5xx reply;
  retrying cannot help, the outbox row fails with the reason.
* :class:`TemporarySendError`: 4xx replies, connection errors and timeouts; retried later.
  :class:`ServerUnavailable` (no connection at all) is retried for as long as the outage lasts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import socket
import ssl
from contextlib import contextmanager
from email.message import Message
from email.utils import parseaddr
from pathlib import Path

log = logging.getLogger("retreat.mail")


class SendError(Exception):
    permanent = False


class PermanentSendError(SendError):
    permanent = True


class TemporarySendError(SendError):
    permanent = False


class ServerUnavailable(TemporarySendError):
    """The SMTP server could not be reached at all: nothing about the message was tried, so the
    dispatcher keeps retrying it (backoff up to its cap) instead of giving up after N attempts."""


def mail_domain(mail_from: str) -> str:
    addr = parseaddr(mail_from)[1]
    return addr.rpartition("@")[2] or "retreat.localhost"


def message_id(outbox_id: int, dedupe_key: str, domain: str) -> str:
    """Stable per outbox row: a resend after a crash carries the same Message-ID."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"<outbox-{outbox_id}.{digest}@{domain}>"


class FileTransport:
    """Writes ``<dir>/<outbox id>.eml`` (atomically) and logs one line per message."""

    name = "file"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @contextmanager
    def open(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        yield self

    def send(self, msg: Message, *, outbox_id: int) -> None:
        path = self.directory / f"{outbox_id}.eml"
        tmp = path.with_suffix(f".eml.tmp{os.getpid()}")
        try:
            tmp.write_bytes(bytes(msg))
            os.replace(tmp, path)
        except OSError as exc:
            raise TemporarySendError(f"cannot write {path}: {exc}") from exc
        log.info("email %s to %s %r written to %s", outbox_id, msg["To"], msg["Subject"], path)


class SmtpTransport:
    """SMTP with optional STARTTLS and AUTH; one connection per batch, reopened after errors."""

    name = "smtp"

    def __init__(self, host: str, port: int = 587, *, username: str = "", password: str = "",
                 starttls: bool = True, timeout: float = 20.0):
        self.host, self.port = host, int(port)
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout
        self._conn: smtplib.SMTP | None = None
        self._connect_error: TemporarySendError | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            # smtplib writes commands in small pieces; without NODELAY, Nagle's algorithm and the
            # peer's delayed ACK cost ~40 ms per message.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporarySendError(f"SMTP authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(f"cannot connect to SMTP {self.host}:{self.port}: {exc}") from exc
        return conn

    @contextmanager
    def open(self):
        self._connect_error = None
        try:
            yield self
        finally:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._conn = None

    def send(self, msg: Message, *, outbox_id: int) -> None:
        if self._conn is None:
            if self._connect_error is not None:  # server unreachable: the rest of the batch waits too
                raise self._connect_error
            try:
                self._conn = self._connect()
            except TemporarySendError as exc:
                self._connect_error = exc
                raise
        try:
            refused = self._conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset()
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_text(err)}" for rcpt, (code, err) in exc.recipients.items())
            raise _by_code(min(codes) if codes else 450, f"recipient refused: {detail}") from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self._reset()
            raise _by_code(exc.smtp_code, f"SMTP rejected the message: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise _by_code(exc.smtp_code, f"SMTP error: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TemporarySendError(f"SMTP connection failed: {exc}") from exc
        if refused:  # some recipients refused (we only ever send to one)
            detail = "; ".join(f"{r}: {c} {_text(e)}" for r, (c, e) in refused.items())
            raise PermanentSendError(f"recipient refused: {detail}")
        log.info("email %s to %s sent via %s:%s", outbox_id, msg["To"], self.host, self.port)

    def _reset(self) -> None:
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError, AttributeError):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _text(err) -> str:
    return err.decode(errors="replace") if isinstance(err, bytes) else str(err)


def _by_code(code: int, text: str) -> SendError:
    return PermanentSendError(text) if 500 <= int(code or 0) < 600 else TemporarySendError(text)


def transport_from_config(config) -> FileTransport | SmtpTransport:
    """SMTP when ``SMTP_HOST`` is set; otherwise the embedded file transport."""
    if config.get("SMTP_HOST"):
        return SmtpTransport(
            config["SMTP_HOST"], config.get("SMTP_PORT", 587),
            username=config.get("SMTP_USERNAME", ""), password=config.get("SMTP_PASSWORD", ""),
            starttls=bool(config.get("SMTP_STARTTLS", True)), timeout=float(config.get("SMTP_TIMEOUT", 20)),
        )
    return FileTransport(config["MAIL_OUTBOX_DIR"])
