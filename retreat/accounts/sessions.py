"""Server-side sign-in sessions.

A browser that signs in gets a random session id; only its SHA-256 is stored here, and the
signed cookie (and, for participants who ask to stay signed in, the remember-me cookie) carries
nothing but that id. Every request loads the row (one indexed read): a session that is revoked
(sign-out, sign-out-everywhere, a password or role change, an admin's sign-out, deactivation) or
idle for longer than its role allows is anonymous, whatever cookie the browser still holds.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import Boolean, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from retreat.accounts.models import STAFF_ROLES, User
from retreat.core.crypto import hash_token
from retreat.core.errors import NotFound
from retreat.extensions import db
from retreat.timeutil import now_utc

# Activity is recorded to the minute: the idle timeout may end a session up to a minute early,
# never late, and a busy page does not write on every request.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
USER_AGENT_MAX = 255


class EndReason(StrEnum):
    SIGN_OUT = "sign_out"
    SIGN_OUT_EVERYWHERE = "sign_out_everywhere"
    SIGNED_OUT_BY_USER = "signed_out_from_another_device"
    PASSWORD_CHANGED = "password_changed"
    ROLE_CHANGED = "role_changed"
    DEACTIVATED = "deactivated"
    ADMIN_SIGN_OUT = "admin_sign_out"
    TOTP_RESET = "totp_reset"
    IDLE = "idle"


class UserSession(db.Model):
    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(default=now_utc, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    # "Keep me signed in" (participants only): a remember-me cookie may restore this session.
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent: Mapped[str] = mapped_column(String(USER_AGENT_MAX), default="")
    ip: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def device(self) -> str:
        return device_summary(self.user_agent)


# Rules -----------------------------------------------------------------------------------------


def may_remember(user: User) -> bool:
    """Staff sessions never outlive the browser: no remember-me for them."""
    return user.role not in STAFF_ROLES


def idle_limit(user: User, *, remember: bool = False) -> timedelta:
    """How long a session of ``user`` may sit unused. Every staff role (facilitators see safety
    alerts and consult reasons) gets the short staff timeout; a participant who chose to stay
    signed in gets the remember-me duration."""
    cfg = current_app.config
    if user.role in STAFF_ROLES:
        return timedelta(minutes=cfg["IDLE_TIMEOUT_MINUTES_STAFF"])
    if remember:
        return remember_duration()
    return timedelta(minutes=cfg["IDLE_TIMEOUT_MINUTES"])


def remember_duration() -> timedelta:
    duration = current_app.config["REMEMBER_COOKIE_DURATION"]
    return duration if isinstance(duration, timedelta) else timedelta(seconds=int(duration))


def is_expired(row: UserSession, *, now: datetime) -> bool:
    return now - row.last_seen_at > idle_limit(row.user, remember=row.remember)


def open_session(user: User, *, remember: bool = False, user_agent: str | None = None, ip: str | None = None,
                 now: datetime | None = None) -> tuple[UserSession, str]:
    """A new session of ``user``; returns the row and the raw id (shown once: put it in the cookie)."""
    now = now or now_utc()
    raw = secrets.token_urlsafe(32)
    row = UserSession(token_hash=hash_token(raw), user=user, user_id=user.id, created_at=now, last_seen_at=now,
                      remember=bool(remember and may_remember(user)),
                      user_agent=(user_agent or "")[:USER_AGENT_MAX], ip=(ip or None) and ip[:64])
    db.session.add(row)
    db.session.flush()
    return row, raw


def load_active(raw: str | None, *, ip: str | None = None,
                now: datetime | None = None) -> tuple[UserSession | None, bool]:
    """The live session a raw id names, with its user (one statement), and whether it just ended
    because it was idle too long (then it is revoked here). Unknown, revoked, idle, or of a
    deactivated account: None. A session is not bound to an address: ``ip`` (the proxy-corrected
    client address) only becomes the session's last address, shown in the person's session list."""
    if not raw or not isinstance(raw, str) or len(raw) > 200:
        return None, False
    now = now or now_utc()
    row = db.session.scalar(select(UserSession).options(joinedload(UserSession.user))
                            .where(UserSession.token_hash == hash_token(raw)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        return None, False
    if is_expired(row, now=now):
        revoke(row, EndReason.IDLE, now=now)
        return None, True
    if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
    address = (ip or None) and ip[:64]
    if address and address != row.ip:
        row.ip = address  # a phone moving from Wi-Fi to mobile data stays signed in
    return row, False


def revoke(row: UserSession, reason: str, *, now: datetime | None = None) -> None:
    if row.revoked_at is None:
        row.revoked_at = now or now_utc()
        row.revoked_reason = str(reason)


def end_all(user: User, reason: str, *, keep: UserSession | None = None, now: datetime | None = None) -> int:
    """End every open session of ``user`` (but ``keep``, the device asking); returns how many.
    Also bumps ``session_version``, which password-reset links are bound to."""
    now = now or now_utc()
    user.session_version += 1
    stmt = (update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=str(reason)).execution_options(synchronize_session="fetch"))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    return db.session.execute(stmt).rowcount or 0


def open_sessions(user: User, *, now: datetime | None = None) -> list[UserSession]:
    """The sessions of ``user`` that still work, most recently used first."""
    now = now or now_utc()
    rows = db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                        UserSession.revoked_at.is_(None))
                              .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()))
    return [row for row in rows if not is_expired(row, now=now)]


def revoke_own(user: User, session_id: int, *, now: datetime | None = None) -> UserSession:
    """``user`` signs out one of their own sessions (e.g. a lost phone) from the account page."""
    row = db.session.get(UserSession, session_id) if 0 < session_id < 2**31 else None
    if row is None or row.user_id != user.id:
        raise NotFound("That session is not one of yours.")
    revoke(row, EndReason.SIGNED_OUT_BY_USER, now=now)
    return row


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
_TOKEN_RE = re.compile(r"^[\w.-]{1,40}")


def device_summary(user_agent: str | None) -> str:
    """"Firefox on Linux": what a person recognises in their list of sessions."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    match = _TOKEN_RE.match(ua)
    return match.group(0) if match else "Unknown device"
