"""A person's own profile: name and time zone."""

from __future__ import annotations

from retreat import audit
from retreat.accounts.models import User
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.timeutil import is_valid_zone


def update_profile(user: User, *, name: str | None = None, tz: str | None = None,
                   ctx: RequestContext | None = None) -> User:
    """Only the given fields change; nothing changes when one of them is invalid."""
    changes: dict[str, str] = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("Enter a name (up to 200 characters).", field="name")
        changes["name"] = name
    if tz is not None:
        if not is_valid_zone(tz):
            raise ValidationFailed("Choose a valid time zone.", field="tz")
        changes["tz"] = tz
    changes = {k: v for k, v in changes.items() if getattr(user, k) != v}
    if changes:
        for key, value in changes.items():
            setattr(user, key, value)
        audit.record("user.profile_updated", actor=user, object_type="user", object_id=user.id,
                     details={"fields": sorted(changes)}, ctx=ctx)
    return user
