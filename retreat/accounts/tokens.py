"""Signed, expiring links for email verification and password reset.

Tokens are itsdangerous ``URLSafeTimedSerializer`` payloads, each kind with its own salt so one
kind can never be replayed as another. The clock is injected (``now``) for tests.

- verify-email tokens are bound to the user id and the email address they were sent to: a token
  for an old address does not verify a new one.
- password-reset tokens are bound to a fingerprint of the current password hash and the session
  version, so a link dies once used (the password changes) or after any other password change
  or "sign out everywhere".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from retreat.accounts.models import User
from retreat.core import urls
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.timeutil import now_utc

VERIFY_SALT = "retreat.email-verify.v1"
RESET_SALT = "retreat.password-reset.v1"


class TokenInvalid(DomainError):
    """Tampered, malformed, for another account, or already used."""

    status = 400


class TokenExpired(DomainError):
    status = 400

    def __init__(self, message: str, *, user_id: int | None = None):
        super().__init__(message)
        self.user_id = user_id


def _serializer(salt: str, now: datetime) -> URLSafeTimedSerializer:
    stamp = int(now.timestamp())

    class _ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:  # the injected clock, for signing and for max_age checks
            return stamp

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt, signer=_ClockSigner)


def external_url(endpoint: str, **values) -> str:
    """An absolute link for emails, built from BASE_URL (works outside a request)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return urls.base_url() + path


@dataclass(frozen=True)
class _Kind:
    salt: str
    max_age_key: str  # app config key, in seconds
    expired: str
    invalid: str
    claim: Callable[[User], str]  # what the token is bound to besides the user id


def _make(kind: _Kind, user: User, now: datetime | None) -> str:
    return _serializer(kind.salt, now or now_utc()).dumps({"u": user.id, "c": kind.claim(user)})


def _load(kind: _Kind, token: str, now: datetime | None) -> User:
    """The user a token is still good for; raises TokenExpired / TokenInvalid."""
    s = _serializer(kind.salt, now or now_utc())
    try:
        payload = s.loads(token or "", max_age=current_app.config[kind.max_age_key])
    except SignatureExpired as exc:
        user_id = None
        try:
            data = s.load_payload(exc.payload) if exc.payload is not None else {}
            user_id = int(data.get("u")) if isinstance(data, dict) else None
        except (BadSignature, TypeError, ValueError):
            user_id = None
        raise TokenExpired(kind.expired, user_id=user_id) from exc
    except BadSignature as exc:
        raise TokenInvalid(kind.invalid) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        raise TokenInvalid(kind.invalid)
    user = db.session.get(User, payload["u"])
    if user is None or not user.is_active or payload.get("c") != kind.claim(user):
        raise TokenInvalid(kind.invalid)
    return user


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def password_fingerprint(user: User) -> str:
    """Changes whenever the password or the session version changes."""
    return _digest(f"{user.password_hash or ''}|{user.session_version}|{user.email}")


VERIFY = _Kind(
    salt=VERIFY_SALT, max_age_key="EMAIL_VERIFY_MAX_AGE",
    expired="This verification link has expired. We can send you a fresh one.",
    invalid="This verification link is not valid. It may have been copied incompletely.",
    claim=lambda user: _digest(user.email),  # bound to the address, without putting it in the URL
)
RESET = _Kind(
    salt=RESET_SALT, max_age_key="PASSWORD_RESET_MAX_AGE",
    expired="This reset link has expired. Ask for a new one below; nothing was changed.",
    invalid="This reset link is not valid or has already been used. Ask for a new one below; nothing was changed.",
    claim=password_fingerprint,
)


def make_verify_token(user: User, *, now: datetime | None = None) -> str:
    return _make(VERIFY, user, now)


def verify_url(user: User, *, now: datetime | None = None) -> str:
    return external_url("account.verify_email_link", token=make_verify_token(user, now=now))


def load_verify_token(token: str, *, now: datetime | None = None) -> User:
    return _load(VERIFY, token, now)


def make_reset_token(user: User, *, now: datetime | None = None) -> str:
    return _make(RESET, user, now)


def reset_url(user: User, *, now: datetime | None = None) -> str:
    return external_url("account.reset_password_link", token=make_reset_token(user, now=now))


def load_reset_token(token: str, *, now: datetime | None = None) -> User:
    return _load(RESET, token, now)
