"""SMS opt-in: a person's phone number, verified by a 6-digit code, and STOP / START from the phone.

* ``request_code``: the number is validated and normalised to E.164 (``phonenumbers``); a code is
  texted to it (sealed in the SMS outbox, stored here only as a keyed hash); it expires after 10
  minutes, allows 5 wrong tries, and a new one can be asked for after a minute (at most 5 an hour).
* ``verify``: the right code moves the number from pending to verified and turns SMS reminders on;
  an account's reminders queued before get their SMS twins (``sms_outbox.queue_pending_twins``),
  as when SMS is turned on again (``set_sms``, START).
  Nothing changes on a wrong or expired code, except the count of wrong tries.
* ``set_sms`` / ``remove``: the person turns SMS off (or on again) or removes the number; queued
  messages are cancelled.
* ``inbound``: a text from a phone (``POST /webhooks/sms``): STOP words turn SMS off for the
  number and cancel what is queued to it, START words turn it back on, HELP answers.
* Numbers are encrypted at rest (core.crypto) with a keyed hash to find them; every change is
  audited; the number is part of the person's data export. ``messaging.sms_outbox`` asks
  ``verified_number`` whom to text (registered below).
* A number belongs to an account (``user_id``) or to one consult booking (``consultation_id``: a
  guest who booked without an account, from the booking's manage page, ``consults.guest_phone``);
  the same rules (``Owner``) apply to both. ``move_to_user`` hands a booking's number to the account
  that claims the booking.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from flask import current_app
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from retreat import audit
from retreat.core import personal_data
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field
from retreat.core.errors import ValidationFailed
from retreat.database import TimestampMixin
from retreat.extensions import db
from retreat.messaging import sms_outbox
from retreat.messaging.sms_models import SmsMessage

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_AFTER = timedelta(seconds=60)
MAX_CODES_PER_HOUR = 5
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class PhoneNumber(TimestampMixin, db.Model):
    __tablename__ = "phone_numbers"
    __table_args__ = (CheckConstraint("(user_id IS NULL) <> (consultation_id IS NULL)", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Exactly one owner: an account, or a consult booking made without one (a guest).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"),
                                                        unique=True)
    number_enc: Mapped[str | None] = mapped_column(Text)  # the verified number (E.164), encrypted
    number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    verified_at: Mapped[datetime | None] = mapped_column()
    sms_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    stopped_at: Mapped[datetime | None] = mapped_column()  # STOP from the phone
    pending_enc: Mapped[str | None] = mapped_column(Text)  # the number being verified, encrypted
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column()
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    code_sent_at: Mapped[datetime | None] = mapped_column()
    codes_window_start: Mapped[datetime | None] = mapped_column()
    codes_in_window: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def number(self) -> str | None:
        return decrypt_field(self.number_enc)

    @property
    def pending(self) -> str | None:
        return decrypt_field(self.pending_enc)

    @property
    def sms_on(self) -> bool:
        return bool(self.number_enc and self.sms_enabled and self.stopped_at is None)


class WrongCode(ValidationFailed):
    """A wrong code: refused, but the try is counted (the view keeps that)."""


@dataclass(frozen=True)
class Owner:
    """Whose number it is: an account (``user``) or a consult booking (``consultation_id``; who acts
    is then ``actor_email``, and ``messages_group`` is the group of the booking's texts, cancelled
    with the number)."""

    user: object | None = None
    consultation_id: int | None = None
    tz: str | None = None
    actor_email: str | None = None
    messages_group: str | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def key(self) -> str:
        return str(self.user_id) if self.user is not None else f"consult:{self.consultation_id}"

    @property
    def where(self):
        if self.user is not None:
            return PhoneNumber.user_id == self.user_id
        return PhoneNumber.consultation_id == self.consultation_id

    def audit(self, action: str, *, ctx, now, details: dict | None = None) -> None:
        if self.user is not None:
            audit.record(action, actor=self.user, object_type="user", object_id=self.user_id, details=details,
                         ctx=ctx, now=now)
        else:
            audit.record(action, actor_email=self.actor_email, object_type="consultation",
                         object_id=self.consultation_id, details=details, ctx=ctx, now=now)

    def cancel_texts(self, *, now: datetime, reason: str) -> int:
        if self.user is not None:
            return sms_outbox.cancel(user_id=self.user_id, now=now, reason=reason)
        return sms_outbox.cancel(group_key=self.messages_group, now=now, reason=reason) if self.messages_group else 0


def _owner(who) -> Owner:
    """An ``Owner`` as given, or an account's."""
    return who if isinstance(who, Owner) else Owner(user=who, tz=getattr(who, "tz", None))


def normalise(raw: str | None) -> str:
    """E.164 ("+4930123456") or a ValidationFailed on ``phone`` saying what is wrong."""
    text = (raw or "").strip()
    if not text:
        raise ValidationFailed("Enter your mobile number.", field="phone")
    if len(text) > 40 or "\x00" in text:
        raise ValidationFailed("That is not a phone number.", field="phone")
    region = current_app.config.get("SMS_DEFAULT_REGION") or "US"
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed("That is not a phone number. Include the country code, e.g. +49 30 1234567.",
                               field="phone") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed("That number does not exist. Check it, with the country code "
                               "(e.g. +1 303 555 0142).", field="phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def display(number: str | None) -> str:
    if not number:
        return ""
    return phonenumbers.format_number(phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _code_hash(owner: Owner, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"sms-code:{owner.key}:{code}".encode(), hashlib.sha256).hexdigest()


def for_user(user) -> PhoneNumber | None:
    return db.session.scalar(select(PhoneNumber).where(PhoneNumber.user_id == user.id))


def of(who) -> PhoneNumber | None:
    """The number row of an account or an ``Owner``."""
    return db.session.scalar(select(PhoneNumber).where(_owner(who).where))


def _locked(owner: Owner) -> PhoneNumber | None:
    return db.session.scalar(select(PhoneNumber).where(owner.where).with_for_update())


def request_code(who, raw_number: str, *, now: datetime, ctx: RequestContext | None = None) -> PhoneNumber:
    """Text a new code to ``raw_number`` (normalised); refused when asked again too soon. ``who``: an
    account or an ``Owner``."""
    owner = _owner(who)
    number = normalise(raw_number)
    row = _locked(owner)
    if row is None:
        row = PhoneNumber(user_id=owner.user_id, consultation_id=owner.consultation_id, sms_enabled=False,
                          code_attempts=0, codes_in_window=0)
        db.session.add(row)
    if row.code_sent_at is not None and now - row.code_sent_at < RESEND_AFTER:
        wait = int((RESEND_AFTER - (now - row.code_sent_at)).total_seconds()) + 1
        raise ValidationFailed(f"A code was just sent. Please wait {wait} seconds before asking for another.",
                               field="phone")
    if row.codes_window_start is None or now - row.codes_window_start >= timedelta(hours=1):
        row.codes_window_start, row.codes_in_window = now, 0
    if row.codes_in_window >= MAX_CODES_PER_HOUR:
        raise ValidationFailed("Too many codes were asked for. Please try again in an hour.", field="phone")
    code = f"{secrets.randbelow(10**6):06d}"
    db.session.flush()
    sms_outbox.cancel(group_key=f"phone:{owner.key}", now=now, reason="a newer code was asked for")
    row.pending_enc = encrypt_field(number)
    row.code_hash = _code_hash(owner, code)
    row.code_expires_at, row.code_attempts, row.code_sent_at = now + CODE_TTL, 0, now
    row.codes_in_window += 1
    row.updated_at = now
    sms_outbox.enqueue(template="phone_verification",
                       dedupe_key=f"phone-{owner.key.replace(':', '-')}-code-{secrets.token_hex(8)}",
                       to_number=number, user_id=owner.user_id, tz=owner.tz, private={"code": code},
                       due_at=now, now=now, essential=True, group_key=f"phone:{owner.key}")
    owner.audit("phone.code_sent", details={"number": sms_outbox.masked(number)}, ctx=ctx, now=now)
    return row


def verify(who, code: str | None, *, now: datetime, ctx: RequestContext | None = None) -> PhoneNumber:
    """The right code turns SMS reminders on for the pending number."""
    owner = _owner(who)
    row = _locked(owner)
    if row is None or row.code_hash is None:
        raise ValidationFailed("Ask for a code first.", field="code")
    code = (code or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        raise ValidationFailed("Enter the 6-digit code from the text message.", field="code")
    if row.code_attempts >= MAX_ATTEMPTS:
        raise ValidationFailed("Too many wrong codes. Ask for a new code.", field="code")
    if row.code_expires_at is None or now >= row.code_expires_at:
        raise ValidationFailed("This code has expired. Ask for a new code.", field="code")
    if not hmac.compare_digest(row.code_hash, _code_hash(owner, code)):
        row.code_attempts += 1
        row.updated_at = now
        left = MAX_ATTEMPTS - row.code_attempts
        raise WrongCode("That code is not right. " + (f"{left} tries left." if left else "Ask for a new code."),
                        field="code")
    number = row.pending
    row.number_enc, row.number_hash = encrypt_field(number), sms_outbox.number_hash(number)
    row.verified_at, row.sms_enabled, row.stopped_at = now, True, None
    row.pending_enc = row.code_hash = row.code_expires_at = None
    row.code_attempts, row.updated_at = 0, now
    owner.audit("phone.verified", details={"number": sms_outbox.masked(number)}, ctx=ctx, now=now)
    _queue_pending(owner, now)
    return row


def set_sms(who, on: bool, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """Turn SMS reminders on or off for the verified number; returns whether anything changed."""
    owner = _owner(who)
    row = _locked(owner)
    if row is None or not row.number_enc:
        raise ValidationFailed("Add and verify a mobile number first.", field="phone")
    if row.sms_on == on:
        return False
    row.sms_enabled, row.updated_at = on, now
    if on:
        row.stopped_at = None
        _queue_pending(owner, now)
    else:
        owner.cancel_texts(now=now, reason="SMS turned off")
    owner.audit("phone.sms_on" if on else "phone.sms_off", ctx=ctx, now=now)
    return True


def _queue_pending(owner: Owner, now: datetime) -> None:
    """SMS on for an account: the twins of its reminders queued before (``sms_outbox.queue_pending_twins``).
    A guest's booking re-queues its own (``consults.guest_phone``)."""
    if owner.user is not None:
        db.session.flush()
        sms_outbox.queue_pending_twins(owner.user_id, now)


def remove(who, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    owner = _owner(who)
    row = _locked(owner)
    if row is None:
        return False
    db.session.delete(row)
    owner.cancel_texts(now=now, reason="the number was removed")
    owner.audit("phone.removed", ctx=ctx, now=now)
    return True


def move_to_user(owner: Owner, user, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """A claimed booking's number becomes the account's, unless the account has one (then the
    booking's is deleted). The booking's queued texts follow: to the account, or to its number, or
    are cancelled. Returns whether the number moved."""
    row = _locked(owner)
    if row is None:
        return False
    mine = _locked(Owner(user=user))
    moved = mine is None and row.number_enc is not None
    if moved:
        row.consultation_id, row.user_id, row.updated_at = None, user.id, now
        row.pending_enc = row.code_hash = row.code_expires_at = None
    else:
        db.session.delete(row)
    db.session.flush()
    if owner.messages_group:
        target = row if moved else mine
        sms_outbox.retarget(group_key=owner.messages_group, user_id=user.id,
                            to_number=target.number if target is not None and target.sms_on else None, now=now)
    audit.record("phone.moved_to_account" if moved else "phone.removed", actor_email=owner.actor_email,
                 object_type="consultation", object_id=owner.consultation_id,
                 details={"participant_id": user.id}, ctx=ctx, now=now)
    return moved


def inbound(from_number: str, body: str, *, now: datetime, ctx: RequestContext | None = None) -> str | None:
    """A text from ``from_number``: STOP / START / HELP. Returns the reply to send back, if any."""
    words = (body or "").strip().upper().split()
    keyword = words[0].strip(".!") if words else ""
    try:
        number = normalise(from_number)
    except ValidationFailed:
        return None
    digest = sms_outbox.number_hash(number)
    if keyword in HELP_WORDS:
        return sms_outbox.HELP_TEXT.format(sender=sms_outbox.sender_name(),
                                           contact=current_app.config.get("PRACTICE_CONTACT_EMAIL", ""))
    if keyword not in STOP_WORDS | START_WORDS:
        return None
    stop = keyword in STOP_WORDS
    rows = list(db.session.scalars(select(PhoneNumber).where(PhoneNumber.number_hash == digest).with_for_update()))
    for row in rows:
        row.updated_at = now
        if stop:
            row.sms_enabled, row.stopped_at = False, now
        else:
            row.sms_enabled, row.stopped_at = True, None
        audit.record("phone.sms_stopped" if stop else "phone.sms_started", actor_email=None,
                     object_type="user" if row.user_id else "consultation",
                     object_id=row.user_id or row.consultation_id, details={"by": "text message", "keyword": keyword},
                     ctx=ctx, now=now)
    if stop:
        sms_outbox.cancel(to_hash=digest, now=now, reason=f"{keyword} received from the number")
    else:
        for row in rows:
            if row.user_id:
                sms_outbox.queue_pending_twins(row.user_id, now)
    return None


def verified_number(user_id: int | None = None, consultation_id: int | None = None) -> str | None:
    """The number to text an account (``user_id``) or a guest's booking (``consultation_id``), if SMS is on."""
    if not user_id and not consultation_id:
        return None
    where = PhoneNumber.user_id == user_id if user_id else PhoneNumber.consultation_id == consultation_id
    row = db.session.scalar(select(PhoneNumber).where(where))
    return row.number if row is not None and row.sms_on else None


sms_outbox.register_number_lookup(verified_number)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def phone_section(person, **_) -> dict:
    row = db.session.scalar(select(PhoneNumber).where(PhoneNumber.user_id == person.id))
    texts = db.session.scalars(select(SmsMessage).where(SmsMessage.recipient_user_id == person.id)
                               .order_by(SmsMessage.due_at, SmsMessage.id))
    return {
        "sms": None if row is None else {
            "phone_number": row.number, "verified_at": _iso(row.verified_at), "reminders_on": row.sms_on,
            "stopped_by_text_at": _iso(row.stopped_at), "number_being_verified": row.pending},
        "text_messages_sent_to_you": [{"kind": m.template, "due_at": _iso(m.due_at), "sent_at": _iso(m.sent_at),
                                       "status": m.status} for m in texts],
    }


personal_data.register_section("sms", phone_section, title="Text messages (SMS)",
                               covers=("phone_numbers", "sms_messages"), order=97)
