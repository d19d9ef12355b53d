"""Text reminders for a guest: whoever booked without an account adds a mobile number on the
booking's manage page, verifies it with the texted code, and gets the consult's reminders by SMS
as well as by email (the 24 h and 1 h ones, ``consults.notices``).

The number belongs to the booking (``phone_numbers.consultation_id``) and follows the rules of an
account's number (``accounts.phone``: code hash, expiry, tries, throttle, STOP). It goes with the
booking: cancelled with it (its texts are in the booking's message group), moved with it (a
reschedule queues the new reminders' twins to it), erased with it (``privacy.erasure``), and handed
to the account that claims the booking ("this was me"), unless that account has a number already.
A booking that already belongs to an account uses the account's number (``/account/sms``).
"""

from __future__ import annotations

from datetime import datetime

from retreat.accounts import phone
from retreat.consults import notices
from retreat.consults.models import Consultation, ConsultStatus
from retreat.core import urls
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed


def owner(consult: Consultation) -> phone.Owner:
    return phone.Owner(consultation_id=consult.id, tz=consult.guest_tz, actor_email=consult.guest_email,
                       messages_group=notices.guest_group(consult))


def offered(consult: Consultation, now: datetime) -> bool:
    """The manage page offers text reminders: a guest record whose call is still ahead."""
    return consult.participant_id is None and consult.status == ConsultStatus.BOOKED.value and consult.start_at > now


def number_of(consult: Consultation) -> phone.PhoneNumber | None:
    return phone.of(owner(consult))


def _open(consult: Consultation, now: datetime) -> None:
    if consult.participant_id is not None:
        raise ValidationFailed("This booking belongs to an account: add your number in your account, under "
                               "Text message reminders.", field="phone")
    if not offered(consult, now):
        raise ValidationFailed("Text reminders can only be set up for a booked call that is still ahead.",
                                     field="phone")


def request_code(consult: Consultation, raw_number: str, *, now: datetime, ctx: RequestContext | None = None):
    _open(consult, now)
    return phone.request_code(owner(consult), raw_number, now=now, ctx=ctx)


def verify(consult: Consultation, code: str | None, *, now: datetime, ctx: RequestContext | None = None):
    """The right code turns the booking's texts on, and queues the twins of its reminders still ahead."""
    _open(consult, now)
    row = phone.verify(owner(consult), code, now=now, ctx=ctx)
    notices.queue_reminder_texts(consult, now=now, base_url=urls.base_url())
    return row


def remove(consult: Consultation, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    return phone.remove(owner(consult), now=now, ctx=ctx)


def to_account(consult: Consultation, user, *, now: datetime, ctx: RequestContext | None = None) -> bool:
    """The booking was claimed into ``user``'s account: its number moves there (if they have none)."""
    return phone.move_to_user(owner(consult), user, now=now, ctx=ctx)

