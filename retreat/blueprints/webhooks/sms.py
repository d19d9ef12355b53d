"""POST /webhooks/sms: texts from phones in Twilio's inbound shape (form From, To, Body, MessageSid),
verified with ``X-Twilio-Signature``; STOP / START / HELP handled by ``accounts.phone.inbound``.

The signature is Twilio's: base64 of HMAC-SHA1, keyed by the auth token, over the URL Twilio
called (``BASE_URL`` + path) followed by each POST parameter's name and value, sorted by name.
The answer is TwiML: an empty ``<Response/>``, or a ``<Message>`` (the HELP text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from xml.sax.saxutils import escape

from flask import Response, current_app, request

from retreat.accounts import phone
from retreat.blueprints.webhooks import bp
from retreat.core import urls
from retreat.extensions import csrf, limiter
from retreat.timeutil import now_utc
from retreat.web.security import public_view, request_context


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _twiml(message: str | None = None, status: int = 200) -> Response:
    body = f"<Response><Message>{escape(message)}</Message></Response>" if message else "<Response/>"
    return Response('<?xml version="1.0" encoding="UTF-8"?>' + body, status=status, mimetype="text/xml")


@bp.post("/sms")
@csrf.exempt
@limiter.exempt
@public_view
def sms_webhook():
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    params = {k: v for k, v in request.form.items()}
    url = urls.absolute(request.full_path.rstrip("?"))
    given = request.headers.get("X-Twilio-Signature", "")
    if not token or not given or not hmac.compare_digest(given, twilio_signature(token, url, params)):
        return Response("The X-Twilio-Signature header does not match this request.", status=403,
                        mimetype="text/plain")
    sender, body = (params.get("From") or "").strip(), params.get("Body") or ""
    if not sender or "\x00" in sender + body or len(sender) > 40 or len(body) > 1600:
        return Response("From and Body are required (From at most 40 characters, Body 1600).", status=400,
                        mimetype="text/plain")
    reply = phone.inbound(sender, body, now=now_utc(), ctx=request_context())
    return _twiml(reply)
