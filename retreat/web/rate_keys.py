"""Flask-Limiter keys without personal data: the counted value (a client address, a pending sign-in)
is an HMAC-SHA256 with the secret key, as in ``accounts.signin_limits``. Redis (``REDIS_URL``)
then holds no address or account in clear; the same client still maps to the same key everywhere."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app, request


def hashed(kind: str, value: object) -> str:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(secret, f"rate:{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:40]}"


def client(kind: str):
    """A key function: ``kind`` per (proxy-corrected) client address."""
    return lambda: hashed(kind, request.remote_addr or "unknown")
