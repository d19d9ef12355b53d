"""Private calendar subscription links: one per person, revocable.

Calendar apps (Google Calendar, Outlook, Apple Calendar) fetch a subscription URL on their own
schedule, without cookies, so the URL itself is the credential. Its token is stored twice: a
SHA-256 to find it on each fetch, and encrypted with the field keys so the person can copy the
same link again from their account page (it survives a SECRET_KEY rotation; the field keys rotate
with ``flask keys rotate``). Resetting the link revokes the old one at once; turning it off
revokes it without a new one. Both are audited. Which events a feed holds is decided by
``retreat.integration.calendar_feed``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field, hash_token, new_token
from retreat.core.errors import PermissionDenied
from retreat.database import TimestampMixin
from retreat.extensions import db

TOKEN_PREFIX = "cal"
# Who can subscribe: the people whose own calendar the app holds.
FEED_ROLES = frozenset({Role.PARTICIPANT, Role.FACILITATOR, Role.ADMIN})


class CalendarFeed(TimestampMixin, db.Model):
    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_encrypted: Mapped[str] = mapped_column(Text)
    last_fetched_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()

    @property
    def token(self) -> str:
        return decrypt_field(self.token_encrypted) or ""


def can_subscribe(user: User) -> bool:
    return user.role in FEED_ROLES and user.is_active


def active_feed(user: User) -> CalendarFeed | None:
    return db.session.scalar(select(CalendarFeed).where(
        CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)).order_by(CalendarFeed.id.desc()))


def _revoke_all(user: User, now: datetime) -> int:
    feeds = list(db.session.scalars(select(CalendarFeed).where(
        CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)).with_for_update()))
    for feed in feeds:
        feed.revoked_at = now
    return len(feeds)


def issue(user: User, *, now: datetime, ctx: RequestContext | None = None) -> CalendarFeed:
    """A new subscription link for ``user``; any earlier one stops working now."""
    if not can_subscribe(user):
        raise PermissionDenied("Calendar subscriptions are for participants and facilitators.")
    db.session.scalar(select(User.id).where(User.id == user.id).with_for_update())  # one reset at a time
    replaced = _revoke_all(user, now)
    raw = new_token(TOKEN_PREFIX)
    feed = CalendarFeed(user_id=user.id, token_hash=hash_token(raw), token_encrypted=encrypt_field(raw))
    db.session.add(feed)
    db.session.flush()
    audit.record("calendar_feed.reset" if replaced else "calendar_feed.created", actor=user,
                 object_type="calendar_feed", object_id=feed.id, ctx=ctx, now=now)
    return feed


def revoke(user: User, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """Turn the subscription off. Returns False when there was none."""
    db.session.scalar(select(User.id).where(User.id == user.id).with_for_update())
    if not _revoke_all(user, now):
        return False
    audit.record("calendar_feed.revoked", actor=user, object_type="user", object_id=user.id, ctx=ctx, now=now)
    return True


def resolve(raw: str, *, now: datetime) -> CalendarFeed | None:
    """The live feed a fetched token names, or None (unknown, revoked, or its account closed)."""
    if not raw or not raw.startswith(f"{TOKEN_PREFIX}_") or len(raw) > 100:
        return None
    feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == hash_token(raw)))
    if feed is None or feed.revoked_at is not None or not can_subscribe(feed.user):
        return None
    if feed.last_fetched_at is None or (now - feed.last_fetched_at).total_seconds() > 3600:
        feed.last_fetched_at = now  # at most one write an hour per feed
    return feed
