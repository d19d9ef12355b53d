"""Personal API tokens for staff. The raw token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime

from retreat import audit
from retreat.accounts.models import STAFF_ROLES, ApiToken, User
from retreat.core.context import RequestContext
from retreat.core.crypto import hash_token, new_token
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.timeutil import now_utc


def create_token(user: User, *, name: str, expires_at: datetime | None = None,
                 ctx: RequestContext | None = None, actor: User | None = None) -> tuple[ApiToken, str]:
    if user.role not in STAFF_ROLES:
        raise ValidationFailed("API tokens are for staff accounts only.", field="email")
    name = (name or "").strip()[:100] or "token"
    raw = new_token("rt")
    token = ApiToken(user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw), expires_at=expires_at)
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.created", actor=actor or user, object_type="api_token", object_id=token.id,
                 details={"user_id": user.id, "name": name}, ctx=ctx)
    return token, raw


def revoke_token(token: ApiToken, *, actor: User, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> None:
    if token.revoked_at is not None:
        return
    token.revoked_at = now or now_utc()
    audit.record("api_token.revoked", actor=actor, object_type="api_token", object_id=token.id, ctx=ctx)
