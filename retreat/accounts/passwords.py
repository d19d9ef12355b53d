"""Passwords: Argon2id hashes, the length rule, constant-work checks.

- hashes use argon2id with the library's current recommended parameters; a hash made with older
  parameters is replaced at the next successful sign-in;
- a check costs the same whether or not the account exists (a dummy hash stands in), so unknown
  emails cannot be told apart by timing;
- tests may set ``PASSWORD_HASHER = "cheapest"`` (honoured only when ``app.testing``): the same
  algorithm at minimal cost, so that a suite creating hundreds of accounts stays fast.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2 import profiles as argon2_profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

from retreat.accounts.models import User
from retreat.core.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
_TEST_HASHER = PasswordHasher.from_parameters(argon2_profiles.CHEAPEST)
# Real hashes of a random password: verifying against one costs the same as a real account.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
_TEST_DUMMY_HASH = _TEST_HASHER.hash(secrets.token_urlsafe(16))


def _active_hasher() -> tuple[PasswordHasher, str]:
    try:
        cheap = current_app.testing and current_app.config.get("PASSWORD_HASHER") == "cheapest"
    except RuntimeError:  # no app context
        cheap = False
    return (_TEST_HASHER, _TEST_DUMMY_HASH) if cheap else (_hasher, _DUMMY_HASH)


def validate_password(password: str | None) -> str:
    """At least ``MIN_PASSWORD_LENGTH`` characters, at most ``MAX_PASSWORD_LENGTH``."""
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Use at least {MIN_PASSWORD_LENGTH} characters for your password.", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed("That password is too long.", field="password")
    return password


def hash_password(password: str) -> str:
    return _active_hasher()[0].hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Constant-work check; rehashes when the parameters have changed."""
    hasher, dummy = _active_hasher()
    stored = user.password_hash if user is not None and user.password_hash else dummy
    try:
        ok = hasher.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if user is None or not user.password_hash:
        return False
    if ok and hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)
    return ok
