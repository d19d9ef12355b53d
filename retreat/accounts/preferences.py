"""Message preferences: opting out of non-essential email (the link is ``retreat.messaging.unsubscribe``).

Opting out sets ``User.marketing_opt_out``; essential messages (booking confirmations, safety
messages) are still sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import User
from retreat.core.context import RequestContext
from retreat.core.errors import NotFound
from retreat.extensions import db
from retreat.messaging import unsubscribe as links
from retreat.timeutil import now_utc


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
    email = links.email_for_token(token, secret)
    user = user_for_email(email)
    if user is None:
        raise NotFound("There is no account with this address any more.")
    if not user.marketing_opt_out:
        user.marketing_opt_out = True
        audit.record("messages.unsubscribe", actor_email=user.email, object_type="user",
                     object_id=user.id, ctx=ctx, now=now or now_utc())
    return user


links.register_opt_out_check(opted_out)
