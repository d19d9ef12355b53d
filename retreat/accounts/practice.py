"""The practice's home time zone, a practice setting (``/admin/settings``).

One ``SiteSetting`` row (``practice_timezone``: an IANA name); until an admin chooses one,
``DEFAULT_ZONE``. It is the default of everything new that needs a zone and has none of its own:
a new cohort, a new staff account, the consult availability of a facilitator whose own zone is
unknown. Saved through ``accounts.users.set_setting`` (the ``setting.changed`` audit event);
an unknown zone raises ``ValidationFailed`` and changes nothing.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from retreat.accounts import users
from retreat.accounts.models import User
from retreat.core.cache import Cache
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.timeutil import DEFAULT_PRACTICE_ZONE, canonical_zone, is_valid_zone

KEY = "practice_timezone"
DEFAULT_ZONE = DEFAULT_PRACTICE_ZONE  # the models' fallback too (cohorts.models.Cohort.timezone)
FIELD = "practice_timezone"

_CACHE = Cache("practice time zone setting", max_entries=1, ttl=users._settings_ttl)


def _load() -> str:
    value = users.get_setting(KEY)
    return value if is_valid_zone(value) else DEFAULT_ZONE


def timezone() -> str:
    """The practice's zone (``DEFAULT_ZONE`` until an admin saves one, or when the database is down)."""
    try:
        return _CACHE.get_or_compute(KEY, _load)
    except SQLAlchemyError:
        return DEFAULT_ZONE


def validate(name: str | None) -> str:
    """The canonical IANA name of ``name`` (an alias such as US/Mountain is read as its zone)."""
    value = str(name or "").strip()
    zone = canonical_zone(value)
    if not value or zone is None or not is_valid_zone(zone):
        raise ValidationFailed(f"“{value[:64]}” is not a time zone we know: choose one from the list, such as "
                               f"{DEFAULT_ZONE}.", field=FIELD)
    return zone


def save(name: str | None, *, actor: User, ctx: RequestContext | None = None) -> str:
    """Store the practice's zone (validated here); audited when it changes (saving the zone already in
    force stores and records nothing). Returns the zone."""
    zone = validate(name)
    _CACHE.clear()
    if zone == timezone():
        return zone
    users.set_setting(KEY, zone, actor=actor, ctx=ctx)
    _CACHE.clear()
    return zone
