"""SMS transports: files under ``instance/sms/`` (default, ``SMS_TRANSPORT=file``) and an HTTP
provider in Twilio's REST shape (``SMS_TRANSPORT=twilio``).

Twilio: ``POST {SMS_API_BASE}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json`` with the
form fields To, From (or MessagingServiceSid when ``TWILIO_FROM`` starts with ``MG``) and Body,
HTTP basic auth SID:token. A 4xx answer (21211 invalid number, 21610 unsubscribed...) is a
:class:`PermanentSendError`, except 429 (rate limited); a 5xx, a timeout or a refused connection
is a :class:`TemporarySendError` and the message is retried. Short timeouts.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import ssl
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from retreat.messaging.transport import PermanentSendError, TemporarySendError

log = logging.getLogger("retreat.sms")

DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT = 5.0


class FileSmsTransport:
    """Writes ``<dir>/<sms id>.txt`` (To, then the body) atomically; returns a local message id."""

    name = "file"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def send(self, *, to: str, body: str, sms_id: int) -> str:
        path = self.directory / f"{sms_id}.txt"
        tmp = path.with_suffix(f".txt.tmp{os.getpid()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(f"To: {to}\n\n{body}\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise TemporarySendError(f"cannot write {path}: {exc}") from exc
        log.info("sms %s written to %s", sms_id, path)
        return f"file-{sms_id}"


class TwilioTransport:
    name = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, sender: str, api_base: str = DEFAULT_API_BASE,
                 timeout: float = DEFAULT_TIMEOUT):
        if not (account_sid and auth_token and sender):
            raise ValueError("SMS_TRANSPORT=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM")
        self.account_sid, self.auth_token, self.sender = account_sid, auth_token, sender
        parts = urlsplit(api_base.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SMS_API_BASE {api_base!r} is not an http(s) URL")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix, self.timeout = parts.path, timeout

    @property
    def path(self) -> str:
        return f"{self.prefix}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def send(self, *, to: str, body: str, sms_id: int) -> str:
        sender = {"MessagingServiceSid": self.sender} if self.sender.startswith("MG") else {"From": self.sender}
        form = urlencode({"To": to, **sender, "Body": body}).encode()
        auth = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        conn = self._connection()
        try:
            conn.request("POST", self.path, body=form, headers={
                "Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json", "User-Agent": "retreat-sms/1"})
            resp = conn.getresponse()
            raw = resp.read(64 * 1024)
        except (OSError, http.client.HTTPException) as exc:
            raise TemporarySendError(f"SMS provider unreachable: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        if 200 <= resp.status < 300:
            sid = str(data.get("sid") or "")[:64]
            log.info("sms %s accepted by the provider as %s", sms_id, sid)
            return sid
        detail = f"HTTP {resp.status}" + (f" code {data['code']}" if data.get("code") else "") + (
            f": {data['message']}" if data.get("message") else "")
        if 400 <= resp.status < 500 and resp.status != 429:
            raise PermanentSendError(f"SMS provider refused the message: {detail}"[:500])
        raise TemporarySendError(f"SMS provider error: {detail}"[:500])


def transport_from_config(config) -> FileSmsTransport | TwilioTransport:
    kind = (config.get("SMS_TRANSPORT") or "file").strip().lower()
    if kind == "twilio":
        return TwilioTransport(account_sid=config.get("TWILIO_ACCOUNT_SID", ""),
                               auth_token=config.get("TWILIO_AUTH_TOKEN", ""), sender=config.get("TWILIO_FROM", ""),
                               api_base=config.get("SMS_API_BASE") or DEFAULT_API_BASE,
                               timeout=float(config.get("SMS_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT))
    if kind != "file":
        raise ValueError(f"SMS_TRANSPORT must be 'file' or 'twilio', not {kind!r}")
    return FileSmsTransport(config.get("SMS_OUTBOX_DIR") or Path(config["INSTANCE_DIR"]) / "sms")
