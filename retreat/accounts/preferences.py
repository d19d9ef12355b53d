"""Message preferences: opting out of non-essential email, and the one-click unsubscribe token.

The token signs the recipient's address (no expiry: an unsubscribe link must keep working).
Opting out sets ``User.marketing_opt_out``; essential messages (booking confirmations, safety
messages) are still sent.
"""

from __future__ import annotations

from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import User
from retreat.audit import RequestContext
from retreat.core.errors import NotFound, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc

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


def user_for_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))  # stored lower-cased


def opted_out(*, user_id: int | None, email: str) -> bool:
    """Has the recipient opted out of non-essential messages?"""
    stmt = select(User.marketing_opt_out)
    stmt = stmt.where(User.id == user_id) if user_id else stmt.where(User.email == email.strip().lower())
    return bool(db.session.scalar(stmt))


def unsubscribe(token: str, *, secret: str, ctx: RequestContext | None = None,
                now: datetime | None = None) -> User:
    """Opt the token's address out of non-essential messages. Repeating it is a no-op."""
    email = email_for_token(token, secret)
    user = user_for_email(email)
    if user is None:
        raise NotFound("There is no account with this address any more.")
    if not user.marketing_opt_out:
        user.marketing_opt_out = True
        audit.record("messages.unsubscribe", actor_email=user.email, object_type="user",
                     object_id=user.id, ctx=ctx, now=now or now_utc())
    return user
