"""The guest's manage link: a signed token naming the consult, of which only a hash is stored."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import (
    select,
)

from retreat.consults.models import (
    Consultation,
    ConsultSettings,
    ConsultStatus,
)
from retreat.core import locking
from retreat.core.crypto import hash_token
from retreat.core.errors import DomainError, NotFound
from retreat.extensions import db

MANAGE_LINK_VALID_AFTER_CALL = timedelta(days=7)


class ManageLinkInvalid(NotFound):
    pass


class ManageLinkExpired(DomainError):
    status = 410



LINK_INVALID = "This link is not valid. Check that you copied the whole link from your email."


def link_serializer(salt: str = "consult-manage") -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def signed_payload(token: str, invalid: DomainError, *, salt: str = "consult-manage") -> dict:
    """The payload of an emailed consult link signed with ``salt`` (manage, claim); raises ``invalid``
    for a forged, malformed or overlong one."""
    if not token or len(token) > 500:
        raise invalid
    try:
        data = link_serializer(salt).loads(token)
    except BadSignature:
        raise invalid from None
    if not isinstance(data, dict):
        raise invalid
    return data


def issue_manage_token(consult: Consultation) -> str:
    """A signed token naming the consult (by its calendar UID, known before the row is written) and its
    expiry; only its SHA-256 is stored. Replaces the previous one."""
    expires = consult.end_at + MANAGE_LINK_VALID_AFTER_CALL
    raw = link_serializer().dumps({"u": consult.calendar_uid, "n": secrets.token_urlsafe(12), "e": int(expires.timestamp())})
    consult.manage_token_hash = hash_token(raw)
    consult.manage_token_expires_at = expires
    return raw


def manage_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/consult/manage/{token}"


def consult_for_token(token: str, now: datetime, *, lock: bool = False) -> Consultation:
    """The consult a signed link names (row-locked with ``lock``); refuses a forged, expired or replaced link."""
    invalid = ManageLinkInvalid(LINK_INVALID)
    data = signed_payload(token, invalid)
    if not isinstance(data.get("e"), int):
        raise invalid
    if isinstance(data.get("u"), str):
        stmt = select(Consultation).where(Consultation.calendar_uid == data["u"])
    elif isinstance(data.get("c"), int):  # links issued before tokens named the calendar UID
        stmt = select(Consultation).where(Consultation.id == data["c"])
    else:
        raise invalid
    if now.timestamp() >= data["e"]:
        raise ManageLinkExpired("This link has expired. If you would like to talk with us, book a new consultation.")
    consult = db.session.scalar(stmt)
    if consult is not None and lock:
        consult = locking.lock(Consultation, consult.id)  # refreshed under the lock
    if consult is None:
        raise invalid
    if not hmac.compare_digest(consult.manage_token_hash or "", hash_token(token)):
        raise ManageLinkInvalid("This link has been replaced by a newer one. Please use the link in the most "
                                "recent email we sent you.")
    return consult


def change_cutoff(settings: ConsultSettings | None) -> timedelta:
    """How long before a call it can no longer be moved or cancelled online."""
    return timedelta(hours=settings.change_cutoff_hours if settings else 24)


def change_deadline(consult: Consultation, settings: ConsultSettings | None = None) -> datetime:
    return consult.start_at - change_cutoff(settings or consult.settings)


def changeable_after(settings: ConsultSettings | None, now: datetime) -> datetime:
    """A call moved to a time after this can still be changed online afterwards (its own deadline is
    ahead); rescheduling offers and accepts only such times, so a move never locks the guest in."""
    return now + change_cutoff(settings)


def cutoff_words(settings: ConsultSettings | None) -> str:
    hours = int(change_cutoff(settings).total_seconds() // 3600)
    return f"{hours} hour{'' if hours == 1 else 's'}"


def can_change(consult: Consultation, now: datetime) -> bool:
    return consult.status == ConsultStatus.BOOKED.value and now < change_deadline(consult)
