"""Personal API tokens for staff. The raw token is shown once; only its SHA-256 is stored.

Scopes narrow what a token may do; they never widen what its user's role allows. A token with
``scopes is None`` (made by the CLI without ``--scope``, or before scopes existed) has the full
access of its user's role. Which scopes a role may hold is checked when the token is created
(``SCOPES``); the role is still checked on every call, so a user whose role changed keeps only
what both the new role and the token allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from retreat import audit
from retreat.accounts.models import STAFF_ROLES, ApiToken, Role, User
from retreat.core.context import RequestContext
from retreat.core.crypto import hash_token, new_token
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc


@dataclass(frozen=True)
class Scope:
    name: str
    description: str
    roles: frozenset[str]


_STAFF_OPS = frozenset({Role.FACILITATOR, Role.ADMIN})
SCOPES: dict[str, Scope] = {s.name: s for s in (
    Scope("read:consults", "List consultations", _STAFF_OPS),
    Scope("write:consults", "Cancel and reschedule consultations", _STAFF_OPS),
    Scope("read:cohorts", "Read cohorts and their enrollments", _STAFF_OPS),
    Scope("read:roster", "Read cohort rosters (names, emails, seats; never clinical fields)", _STAFF_OPS),
    Scope("read:finance", "Read ledger entries and payments", frozenset({Role.FINANCE, Role.ADMIN})),
    Scope("admin:webhooks", "Manage outbound webhook endpoints", frozenset({Role.ADMIN})),
)}
EXPIRY_DAYS = (30, 90, 365)  # the choices of the account page; the CLI takes any 1..3650
MAX_EXPIRY_DAYS = 3650
NAME_MAX = 100


def scopes_for_role(role: str) -> list[Scope]:
    """The scopes a user of ``role`` may put on a token, in a stable order."""
    return [s for s in SCOPES.values() if role in s.roles]


def token_allows(token: ApiToken | None, scope: str) -> bool:
    """Whether a token's scopes include ``scope`` (unscoped tokens allow everything their role does)."""
    return token is None or token.scopes is None or scope in token.scopes


def token_status(token: ApiToken, now: datetime | None = None) -> str:
    """active | expired | revoked, as shown on the account page and used by the API's 401 message."""
    now = now or now_utc()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _clean_scopes(user: User, scopes) -> list[str] | None:
    if scopes is None:
        return None
    cleaned = []
    allowed = {s.name for s in scopes_for_role(user.role)}
    for name in scopes:
        if name not in SCOPES:
            raise ValidationFailed(f"Unknown scope {name!r}.", field="scopes")
        if name not in allowed:
            raise ValidationFailed(f"A {user.role} account cannot hold the scope {name}.", field="scopes")
        if name not in cleaned:
            cleaned.append(name)
    if not cleaned:
        raise ValidationFailed("Choose at least one scope.", field="scopes")
    return cleaned


def expiry_from_days(days: int | None, now: datetime | None = None) -> datetime | None:
    if days is None:
        return None
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationFailed(f"Expiry must be between 1 and {MAX_EXPIRY_DAYS} days, or none.", field="expires")
    return (now or now_utc()) + timedelta(days=days)


def create_token(user: User, *, name: str, expires_at: datetime | None = None, scopes=None,
                 ctx: RequestContext | None = None, actor: User | None = None,
                 now: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; ``scopes=None`` keeps the full access of the role. Raises ValidationFailed
    (nothing written) for a non-staff user, an unknown scope, a scope the role may not hold, an
    empty scope list or an expiry in the past."""
    if user.role not in STAFF_ROLES:
        raise ValidationFailed("API tokens are for staff accounts only.", field="email")
    cleaned = _clean_scopes(user, scopes)
    if expires_at is not None and expires_at <= (now or now_utc()):
        raise ValidationFailed("The expiry must be in the future.", field="expires")
    name = (name or "").strip()[:NAME_MAX] or "token"
    raw = new_token("rt")
    token = ApiToken(user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw), expires_at=expires_at,
                     scopes=cleaned)
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.created", actor=actor or user, object_type="api_token", object_id=token.id,
                 details={"user_id": user.id, "name": name, "scopes": cleaned,
                          "expires_at": expires_at.isoformat() if expires_at else None}, ctx=ctx)
    return token, raw


def tokens_of(user: User) -> list[ApiToken]:
    return list(db.session.scalars(db.select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(token: ApiToken, *, actor: User, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> None:
    if token.revoked_at is not None:
        return
    token.revoked_at = now or now_utc()
    audit.record("api_token.revoked", actor=actor, object_type="api_token", object_id=token.id, ctx=ctx)
