"""Whose consult is it? A booking joins an account's history only when the email's owner says so.

Anyone can type anyone's email address into the booking form or the API. A booking made without
being signed in as the owner of its email address is therefore a *guest record*: it names no
participant, so nothing about it (its pre-screen flags, its outcome) reaches a person's history:
the provider's consult safety section, the facilitator's "earlier consults", the participant's
export. The confirmation email carries a link, "this was me"; following it (a POST from the page
it opens, so that mail scanners fetching links confirm nothing) attaches the booking to the
account of that address, creating one (unverified, without a password) if there is none. Like
the manage link, the link is a signed token of which only a SHA-256 is stored; unlike the manage
link, it is never shown to whoever booked, only emailed to the address.

A booking made while signed in as the owner of its email address joins their history at once.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts import users as accounts
from retreat.accounts.models import User
from retreat.consults import guest_phone
from retreat.consults.manage import LINK_INVALID, link_serializer, signed_payload
from retreat.consults.models import Consultation
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.crypto import hash_token
from retreat.core.errors import NotFound
from retreat.extensions import db


class ClaimLinkInvalid(NotFound):
    pass


SALT = "consult-claim"


def owner_for(signed_in: User | None, email: str) -> User | None:
    """The account a new booking joins at once: the signed-in person's, when the email is theirs."""
    if signed_in is None or not getattr(signed_in, "is_authenticated", True):
        return None
    return signed_in if accounts.normalize_email(signed_in.email) == email else None


def issue_claim_token(consult: Consultation) -> str:
    """A signed token naming the consult by its calendar UID; only its SHA-256 is stored."""
    raw = link_serializer(SALT).dumps({"u": consult.calendar_uid, "n": secrets.token_urlsafe(12)})
    consult.claim_token_hash = hash_token(raw)
    return raw


def claim_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/consult/claim/{token}"


def consult_for_claim(token: str, *, lock: bool = False) -> Consultation:
    invalid = ClaimLinkInvalid(LINK_INVALID)
    data = signed_payload(token, invalid, salt=SALT)
    if not isinstance(data.get("u"), str):
        raise invalid
    consult = db.session.scalar(select(Consultation).where(Consultation.calendar_uid == data["u"]))
    if consult is not None and lock:
        consult = locking.lock(Consultation, consult.id)
    if consult is None or not hmac.compare_digest(consult.claim_token_hash or "", hash_token(token)):
        raise invalid
    return consult


def confirm_owner(token: str, *, now: datetime, ctx: RequestContext | None = None) -> tuple[Consultation, bool]:
    """"This was me": the booking joins the history of its email's account. (consult, already)."""
    consult = consult_for_claim(token, lock=True)
    if consult.owner_confirmed_at is not None:
        return consult, True
    owner, _created = accounts.guest_account(email=consult.guest_email, name=consult.guest_name,
                                             tz=consult.guest_tz, ctx=ctx, now=now)
    consult.participant_id = owner.id
    consult.owner_confirmed_at = now
    consult.updated_at = now
    guest_phone.to_account(consult, owner, now=now, ctx=ctx)  # a number verified on the manage page moves too
    audit.record("consult.owner_confirmed", actor_email=consult.guest_email, object_type="consultation",
                 object_id=consult.id, details={"participant_id": owner.id}, ctx=ctx, now=now)
    return consult, False
