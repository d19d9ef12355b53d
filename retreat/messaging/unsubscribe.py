"""The one-click unsubscribe link, and who the dispatcher asks whether a recipient opted out.

The token signs the recipient's address (no expiry: an unsubscribe link must keep working).
Opting out is stored with the account (``retreat.accounts.preferences``), a layer above this one:
it registers its check here with ``register_opt_out_check`` when it is imported (the app factory
imports it), and the dispatcher calls ``opted_out``.
"""

from __future__ import annotations

from collections.abc import Callable

from itsdangerous import BadSignature, URLSafeSerializer

from retreat.core.errors import ValidationFailed

UNSUBSCRIBE_PATH = "/unsubscribe/"
_SALT = "retreat.unsubscribe.v1"


def unsubscribe_token(email: str, secret: str) -> str:
    return URLSafeSerializer(secret, salt=_SALT).dumps({"e": email.strip().lower()})


def unsubscribe_url(email: str, *, secret: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}{unsubscribe_token(email, secret)}"


def email_for_token(token: str, secret: str) -> str:
    try:
        data = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except BadSignature as exc:
        raise ValidationFailed("This unsubscribe link is not valid.", field="token") from exc
    email = data.get("e") if isinstance(data, dict) else None
    if not isinstance(email, str) or "@" not in email:
        raise ValidationFailed("This unsubscribe link is not valid.", field="token")
    return email


OptOutCheck = Callable[..., bool]
_checks: list[OptOutCheck] = []


def register_opt_out_check(check: OptOutCheck) -> None:
    """``check(user_id=..., email=...)`` answers whether the recipient opted out of non-essential mail."""
    if check not in _checks:
        _checks.append(check)


def opted_out(*, user_id: int | None, email: str) -> bool:
    if not _checks:
        raise RuntimeError("no opt-out check registered: import retreat.accounts.preferences first")
    return any(check(user_id=user_id, email=email) for check in _checks)
