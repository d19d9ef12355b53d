"""Authentication: password checks with audit trail, TOTP second factor."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from retreat import audit
from retreat.accounts import passwords
from retreat.accounts import users as accounts
from retreat.accounts.models import User
from retreat.accounts.recovery_codes import TotpRecoveryCode
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, PermissionDenied, ValidationFailed
from retreat.extensions import db
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
    ok = passwords.verify_password(user, password)
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


def record_session_ended(user: User, session_id: int, *, ctx: RequestContext | None = None) -> None:
    audit.record("auth.session_signed_out", actor=user, object_type="user", object_id=user.id,
                 details={"session": session_id}, ctx=ctx)


# Two-factor authentication (TOTP, RFC 6238) ---------------------------------------------------

TOTP_ISSUER_FALLBACK = "retreat"
TOTP_STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
MAX_TOTP_FAILURES = 5  # wrong codes in a row at sign-in before going back to the password step
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)


def _clean_code(code: str | None) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace() and ch != "-").lower()


def begin_totp_setup(user: User) -> str:
    """The secret being set up: a fresh one unless a pending (not yet confirmed) one exists."""
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already on.")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        user.totp_last_step = None
    return user.totp_secret


def provisioning_uri(user: User, secret: str, issuer: str) -> str:
    return _totp(secret).provisioning_uri(name=user.email, issuer_name=issuer or TOTP_ISSUER_FALLBACK)


def check_totp_code(user: User, code: str | None, *, now: datetime | None = None) -> bool:
    """A current code (one step of clock drift either way) that was not used before."""
    now = now or now_utc()
    code = _clean_code(code)
    if not user.totp_secret or len(code) != 6 or not code.isdigit():
        return False
    totp = _totp(user.totp_secret)
    current = int(now.timestamp()) // TOTP_STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return _claim_step(user, step)
    return False


def _claim_step(user: User, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: a conditional UPDATE, so two
    concurrent sign-ins with one code cannot both pass."""
    if user.totp_last_step is not None and step <= user.totp_last_step:
        return False  # replayed (or older than one already used)
    done = db.session.execute(
        update(User).where(User.id == user.id,
                           or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    if (done.rowcount or 0) != 1:
        return False
    set_committed_value(user, "totp_last_step", step)
    return True


def _hash_recovery_code(code: str) -> str:
    return hashlib.sha256(_clean_code(code).encode()).hexdigest()


def _new_recovery_codes(user: User, *, now: datetime) -> list[str]:
    db.session.execute(delete(TotpRecoveryCode).where(TotpRecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(TotpRecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(raw),
                                        created_at=now, updated_at=now))
    db.session.flush()
    return codes


def use_recovery_code(user: User, code: str | None, *, now: datetime | None = None) -> bool:
    now = now or now_utc()
    cleaned = _clean_code(code)
    if len(cleaned) != 10:
        return False
    row = db.session.scalar(select(TotpRecoveryCode).where(
        TotpRecoveryCode.user_id == user.id, TotpRecoveryCode.code_hash == _hash_recovery_code(cleaned),
        TotpRecoveryCode.used_at.is_(None)))
    if row is None:
        return False
    # Conditional update: two concurrent uses of one code cannot both succeed.
    done = db.session.execute(
        update(TotpRecoveryCode).where(TotpRecoveryCode.id == row.id, TotpRecoveryCode.used_at.is_(None))
        .values(used_at=now, updated_at=now).execution_options(synchronize_session="fetch"))
    return (done.rowcount or 0) == 1


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(TotpRecoveryCode).where(
        TotpRecoveryCode.user_id == user.id, TotpRecoveryCode.used_at.is_(None))) or 0


def enable_totp(user: User, code: str | None, *, ctx: RequestContext | None = None,
                now: datetime | None = None) -> list[str]:
    """Turn two-factor on after a correct code; returns the recovery codes (shown once)."""
    now = now or now_utc()
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already on.")
    if not user.totp_secret:
        raise Conflict("Start the set-up again: no secret was generated.")
    if not check_totp_code(user, code, now=now):
        audit.record("auth.totp_failed", actor=user, object_type="user", object_id=user.id,
                     details={"stage": "setup"}, ctx=ctx, now=now)
        raise ValidationFailed("That code is not right. Check your authenticator app's clock and try "
                               "the newest code.", field="code")
    user.totp_enabled_at = now
    codes = _new_recovery_codes(user, now=now)
    audit.record("auth.totp_enabled", actor=user, object_type="user", object_id=user.id, ctx=ctx, now=now)
    return codes


def can_disable_totp(user: User) -> bool:
    return not (user.is_staff and accounts.staff_totp_required())


def disable_totp(user: User, password: str, code: str | None, *, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> None:
    now = now or now_utc()
    if not user.totp_enabled:
        return
    if not can_disable_totp(user):
        raise PermissionDenied("Your practice requires two-factor authentication for staff accounts.")
    errors: dict[str, list[str]] = {}
    if not passwords.verify_password(user, password or ""):
        errors["password"] = ["Your password is not correct."]
    elif not (check_totp_code(user, code, now=now) or use_recovery_code(user, code, now=now)):
        errors["code"] = ["That code is not right."]
    if errors:
        audit.record("auth.totp_failed", actor=user, object_type="user", object_id=user.id,
                     details={"stage": "disable", "reason": next(iter(errors))}, ctx=ctx, now=now)
        raise ValidationFailed(next(iter(errors.values()))[0], errors=errors)
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(TotpRecoveryCode).where(TotpRecoveryCode.user_id == user.id))
    audit.record("auth.totp_disabled", actor=user, object_type="user", object_id=user.id, ctx=ctx, now=now)


def verify_second_factor(user: User, code: str | None, *, ctx: RequestContext | None = None,
                         now: datetime | None = None) -> bool:
    """The sign-in's second step: an authenticator code or an unused recovery code."""
    now = now or now_utc()
    if not user.is_active or not user.totp_enabled:
        return False
    method = None
    if check_totp_code(user, code, now=now):
        method = "totp"
    elif use_recovery_code(user, code, now=now):
        method = "recovery_code"
    if method is None:
        audit.record("auth.totp_failed", actor=user, object_type="user", object_id=user.id,
                     details={"stage": "login"}, ctx=ctx, now=now)
        return False
    complete_login(user, ctx=ctx, now=now, method=method)
    return True
