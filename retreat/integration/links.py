"""Follow-up links: answering from the link in an email, no login, a signed and expiring token.

The token signs ``{"f": follow-up id, "n": nonce}`` with the app secret (itsdangerous); the
follow-up row holds the nonce and ``expires_at``, so a link can be checked against the injected
``now`` and replaced (new nonce) without touching the secret. A tampered or unknown token, an
expired or cancelled follow-up and a second answer each get a clear message; nothing is
overwritten.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts.models import Enrollment
from retreat.core import locking, urls
from retreat.core.errors import Conflict, DomainError
from retreat.extensions import db
from retreat.integration.followup_models import FollowUp, FollowUpStatus
from retreat.timeutil import format_local

PATH = "/follow-up/"
_SALT = "retreat.followup.v1"


class InvalidLink(DomainError):
    status = 400


class LinkClosed(DomainError):
    """Expired or cancelled."""

    status = 410


class AlreadyAnswered(Conflict):
    pass


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def _serializer(secret: str | None = None) -> URLSafeSerializer:
    return URLSafeSerializer(secret or current_app.config["SECRET_KEY"], salt=_SALT)


def token_for(f: FollowUp, secret: str | None = None) -> str:
    return _serializer(secret).dumps({"f": f.id, "n": f.token_nonce})


def followup_url(f: FollowUp, *, secret: str | None = None, base_url: str | None = None) -> str:
    base = (base_url or urls.base_url()).rstrip("/")
    return f"{base}{PATH}{token_for(f, secret)}"


_BAD_LINK = ("This link is not valid. Please open the link from your email exactly as it was sent, "
             "or contact us if it keeps failing.")


def open_followup(token: str, *, now: datetime, secret: str | None = None, lock: bool = False) -> FollowUp:
    """The follow-up a link names, if it may still be answered; otherwise a clear domain error."""
    try:
        data = _serializer(secret).loads(token)
    except BadSignature as exc:
        raise InvalidLink(_BAD_LINK) from exc
    if not isinstance(data, dict) or not isinstance(data.get("f"), int) or not isinstance(data.get("n"), str):
        raise InvalidLink(_BAD_LINK)
    f = locking.lock(FollowUp, data["f"]) if lock else db.session.scalar(select(FollowUp).where(FollowUp.id == data["f"]))
    if f is None or not hmac.compare_digest(f.token_nonce.encode(), data["n"].encode()):
        raise InvalidLink(_BAD_LINK)
    tz = _participant(f).tz
    if f.status == FollowUpStatus.ANSWERED:
        raise AlreadyAnswered(
            f"You already answered this {'check-in' if f.is_checkin else 'questionnaire'} on "
            f"{format_local(f.answered_at, tz)}. Your answers were kept exactly as you sent them; "
            "nothing was changed.")
    if f.status == FollowUpStatus.CANCELLED:
        raise LinkClosed("This follow-up is no longer open, so there is nothing to answer here.")
    if f.status == FollowUpStatus.EXPIRED or now >= f.expires_at:
        raise LinkClosed(f"This link expired on {format_local(f.expires_at, tz)}. If you would like to talk to "
                         "someone, please contact us.")
    return f


def _participant(f: FollowUp) -> User:
    enr = db.session.get(Enrollment, f.enrollment_id)
    return db.session.get(User, enr.participant_id)
