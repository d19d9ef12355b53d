"""Authentication: password checks with audit trail, TOTP second factor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from retreat.models import User
from retreat.services import accounts, audit
from retreat.services.audit import RequestContext
from retreat.timeutil import now_utc

GENERIC_FAILURE = "That email and password do not match an account."


@dataclass
class AuthResult:
    user: User | None
    needs_totp: bool = False
    message: str = ""


def authenticate(email: str, password: str, *, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> AuthResult:
    """Check a password. Unknown email and wrong password look the same from outside."""
    now = now or now_utc()
    user = accounts.get_by_email(email)
    ok = accounts.verify_password(user, password)
    if not ok or user is None:
        audit.record("auth.login_failed", actor=user, actor_email=accounts.normalize_email(email)[:254],
                     object_type="user", object_id=user.id if user else None,
                     details={"reason": "unknown_email" if user is None else "bad_password"}, ctx=ctx, now=now)
        return AuthResult(None, message=GENERIC_FAILURE)
    if not user.is_active:
        audit.record("auth.login_failed", actor=user, object_type="user", object_id=user.id,
                     details={"reason": "inactive"}, ctx=ctx, now=now)
        return AuthResult(None, message="This account is deactivated. Contact the practice.")
    if user.totp_enabled:
        audit.record("auth.password_ok_totp_pending", actor=user, object_type="user", object_id=user.id,
                     ctx=ctx, now=now)
        return AuthResult(user, needs_totp=True)
    complete_login(user, ctx=ctx, now=now)
    return AuthResult(user)


def complete_login(user: User, *, ctx: RequestContext | None = None, now: datetime | None = None,
                   method: str = "password") -> None:
    now = now or now_utc()
    user.last_login_at = now
    audit.record("auth.login", actor=user, object_type="user", object_id=user.id,
                 details={"method": method}, ctx=ctx, now=now)


def record_logout(user: User, *, ctx: RequestContext | None = None) -> None:
    audit.record("auth.logout", actor=user, object_type="user", object_id=user.id, ctx=ctx)
