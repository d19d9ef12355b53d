"""Crisis resources: the numbers a participant can call at once, a practice setting.

Kept as one ``SiteSetting`` row (``crisis_resources``, JSON: the country and a list of
``{"name", "number", "description"}``); until an admin saves their own, the US default
(988 and 911). Participants and guests see them on their pages, the check-in and safety pages
and in their emails; staff pages and staff emails do not carry them (``retreat.web.crisis`` and
``retreat.messaging.render`` decide where).

Bad input raises ``ValidationFailed`` and changes nothing; every change is audited (the
``setting.changed`` event of ``accounts.users.set_setting``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from sqlalchemy.exc import SQLAlchemyError

from retreat.accounts import users
from retreat.accounts.models import User
from retreat.core.cache import Cache
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed

KEY = "crisis_resources"
MAX_RESOURCES = 6
NAME_MAX = 80
NUMBER_MAX = 40
DESCRIPTION_MAX = 200
COUNTRY_MAX = 60
_NUMBER = re.compile(r"^\+?[0-9][0-9 ().-]*$")


@dataclass(frozen=True)
class Resource:
    name: str
    number: str
    description: str

    @property
    def dial(self) -> str:
        """The number as a ``tel:`` link wants it (digits and a leading +)."""
        return re.sub(r"[^0-9+]", "", self.number)


@dataclass(frozen=True)
class CrisisResources:
    country: str
    resources: tuple[Resource, ...]


DEFAULT = CrisisResources(country="United States", resources=(
    Resource("988 Suicide & Crisis Lifeline", "988", "Call or text, free and confidential, 24/7"),
    Resource("Emergency services", "911", "If you or someone else is in immediate danger"),
))

_CACHE = Cache("crisis resources setting", max_entries=1, ttl=users._settings_ttl)


def _clean(value, *, limit: int, label: str, row: int) -> str:
    value = " ".join(str(value or "").split())
    if "\x00" in value:
        raise ValidationFailed(f"Resource {row}: {label} contains a character that cannot be stored.")
    if len(value) > limit:
        raise ValidationFailed(f"Resource {row}: {label} must be at most {limit} characters.")
    return value


def validate(country: str, rows: list[dict]) -> CrisisResources:
    """The setting from form rows (blank rows skipped); a clear ``ValidationFailed`` otherwise."""
    country = " ".join(str(country or "").split())
    if not country:
        raise ValidationFailed("Name the country these numbers are for.", field="country")
    if len(country) > COUNTRY_MAX or "\x00" in country:
        raise ValidationFailed(f"The country must be at most {COUNTRY_MAX} characters.", field="country")
    resources = []
    for i, row in enumerate(rows, start=1):
        name = _clean(row.get("name"), limit=NAME_MAX, label="the name", row=i)
        number = _clean(row.get("number"), limit=NUMBER_MAX, label="the number", row=i)
        description = _clean(row.get("description"), limit=DESCRIPTION_MAX, label="the description", row=i)
        if not (name or number or description):
            continue
        if not name or not number:
            raise ValidationFailed(f"Resource {i}: give both a name and a number (or clear the row).")
        if not _NUMBER.match(number):
            raise ValidationFailed(f"Resource {i}: the number may hold digits, spaces, brackets, dashes and a "
                                   "leading +.")
        resources.append(Resource(name, number, description))
    if not resources:
        raise ValidationFailed("Keep at least one crisis number: participants must always see one.")
    if len(resources) > MAX_RESOURCES:
        raise ValidationFailed(f"At most {MAX_RESOURCES} numbers.")
    return CrisisResources(country=country, resources=tuple(resources))


def _load() -> CrisisResources:
    raw = users.get_setting(KEY)
    if not raw:
        return DEFAULT
    data = json.loads(raw)
    return CrisisResources(country=data["country"],
                           resources=tuple(Resource(**r) for r in data["resources"]))


def current() -> CrisisResources:
    """The practice's crisis resources (the US default until an admin saves their own).

    The numbers must show even when the database cannot be read (the "temporarily unavailable"
    page is exactly when someone may need them): then the default is shown."""
    try:
        return _CACHE.get_or_compute(KEY, _load)
    except SQLAlchemyError:
        return DEFAULT


def save(value: CrisisResources, *, actor: User, ctx: RequestContext | None = None) -> None:
    """Store ``value`` (already validated) as the practice's setting; audited when it changes."""
    payload = json.dumps({"country": value.country, "resources": [asdict(r) for r in value.resources]},
                         ensure_ascii=False, sort_keys=True)
    _CACHE.clear()
    users.set_setting(KEY, payload, actor=actor, ctx=ctx)
    _CACHE.clear()
