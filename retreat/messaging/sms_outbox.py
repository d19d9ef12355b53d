"""Queue, reschedule and cancel text messages in the caller's transaction (the SMS outbox).

* ``queue_for_user`` is what a reminder uses: ``outbox.enqueue(..., sms={...})`` calls it with the
  email's dedupe key, so the SMS twin of a reminder is ``"<key>:sms"``, queued once, moved and
  cancelled with its email (``outbox.reschedule`` / ``outbox.cancel``). It queues nothing unless
  the person has a verified number with SMS turned on: ``accounts.phone`` (a layer above) answers
  that through ``register_number_lookup``, as ``accounts.preferences`` answers the opt-out check.
* ``queue_pending_twins``: a number verified (or SMS turned on) after reminders were queued gets
  their twins from the spec each email row keeps (``OutboxMessage.sms_spec``).
* ``enqueue`` writes one row (a verification code goes through it directly).
* Bodies are fixed templates (``TEMPLATES``), never clinical, rendered when sent; the first
  message to a number ends with "Reply STOP to opt out".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import datetime

import phonenumbers
from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import make_transient_to_detached

from retreat.core.crypto import encrypt_field
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.messaging.sealed import seal, unseal
from retreat.messaging.sms_models import SmsMessage, SmsStatus
from retreat.timeutil import ensure_utc, is_valid_zone, to_local

STOP_NOTICE = "Reply STOP to opt out."
# Fixed, non-clinical bodies. {sender} is SMS_SENDER_NAME; times are shown in the recipient's zone.
TEMPLATES = {
    "phone_verification": "{sender}: your verification code is {code}. It expires in 10 minutes.",
    "consult_reminder": "{sender}: your consultation is {lead} at {time} ({tz}). Details: {link}",
    "circle_reminder": "{sender}: integration circle {lead} at {time} ({tz}). Details: {link}",
    "checkin_waiting": "{sender}: you have a check-in waiting, please sign in: {link}",
}
HELP_TEXT = ("{sender}: reminders for your consultations, circles and check-ins. Reply STOP to opt out, "
             "START to opt back in. Help: {contact}")
_CLINICAL_KEYS = frozenset({"answers", "mood", "notes", "private_text", "diagnosis", "conditions", "intake"})
SMS_SUFFIX = ":sms"

NumberLookup = Callable[[int | None, int | None], str | None]
_lookups: list[NumberLookup] = []


def register_number_lookup(fn: NumberLookup) -> None:
    """``fn(user_id, consultation_id)`` answers the verified E.164 number of an account, or of a guest's
    consult booking, when SMS reminders are on, else None."""
    if fn not in _lookups:
        _lookups.append(fn)


def verified_number(user_id: int | None, consultation_id: int | None = None) -> str | None:
    if not user_id and not consultation_id:
        return None
    for fn in _lookups:
        number = fn(user_id, consultation_id)
        if number:
            return number
    return None


def number_hash(number: str) -> str:
    """A keyed hash of an E.164 number: finds a number's rows without storing it in clear."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"sms-number:" + number.encode(), hashlib.sha256).hexdigest()


def sender_name() -> str:
    return current_app.config.get("SMS_SENDER_NAME") or "Retreat"


def render(template: str, context: dict, private: dict | None = None, *, tz: str | None, first: bool) -> str:
    """The body as sent. Raises KeyError for an unknown template (a permanent failure)."""
    fmt = TEMPLATES[template]
    values = {**(context or {}), **(private or {})}
    zone_name = tz if is_valid_zone(tz) else "UTC"
    if values.get("start"):
        values["time"] = f"{to_local(datetime.fromisoformat(values['start']), zone_name):%H:%M}"
    values.setdefault("tz", zone_name)
    values["sender"] = sender_name()
    body = fmt.format_map(_Blank(values))
    return f"{body} {STOP_NOTICE}" if first else body


class _Blank(dict):
    def __missing__(self, key):
        return ""


def preview(msg: SmsMessage) -> str:
    """The body for operators: a code is masked, links are the plain ones of the context (no tokens)."""
    try:
        return render(msg.template, msg.context or {}, {"code": "••••••"} if msg.private_enc or
                      msg.template == "phone_verification" else None, tz=msg.recipient_tz, first=False)
    except (KeyError, ValueError):
        return msg.template


def _check(context: dict) -> dict:
    bad = sorted(k for k in context if k.lower() in _CLINICAL_KEYS)
    if bad:
        raise ValidationFailed(f"SMS context must not carry clinical data: {', '.join(bad)}", field="context")
    return context


def enqueue(*, template: str, dedupe_key: str, to_number: str, user_id: int | None, tz: str | None,
            context: dict | None = None, private: dict | None = None, due_at: datetime, now: datetime,
            essential: bool = False, group_key: str | None = None,
            stale_after: datetime | None = None) -> SmsMessage:
    """Queue one SMS; the same ``dedupe_key`` again returns the existing row unchanged."""
    values = _values(template=template, dedupe_key=dedupe_key, to_number=to_number, user_id=user_id, tz=tz,
                     context=context, private=private, due_at=due_at, now=now, essential=essential,
                     group_key=group_key, stale_after=stale_after)
    if db.session.get_bind().dialect.name == "postgresql":
        new_id = db.session.execute(pg_insert(SmsMessage.__table__).values(**values)
                                    .on_conflict_do_nothing(index_elements=["dedupe_key"])
                                    .returning(SmsMessage.__table__.c.id)).scalar()
        if new_id is None:
            return _by_key(values["dedupe_key"])
        msg = SmsMessage(id=new_id, lease_until=None, leased_by=None, provider_message_id=None, last_error=None,
                         sent_at=None, cancelled_at=None, **values)
        make_transient_to_detached(msg)
        db.session.add(msg)
        return msg
    existing = _by_key(values["dedupe_key"])
    if existing is not None:
        return existing
    msg = SmsMessage(**values)
    try:
        with db.session.begin_nested():
            db.session.add(msg)
            db.session.flush()
    except Exception:  # a concurrent enqueue of the same key
        existing = _by_key(values["dedupe_key"])
        if existing is None:
            raise
        return existing
    return msg


def _values(*, template: str, dedupe_key: str, to_number: str, user_id: int | None, tz: str | None,
            context: dict | None, private: dict | None, due_at: datetime, now: datetime, essential: bool,
            group_key: str | None, stale_after: datetime | None) -> dict:
    """The columns of a new pending row."""
    if template not in TEMPLATES:
        raise ValidationFailed(f"Unknown SMS template {template!r}.", field="template")
    return dict(dedupe_key=dedupe_key[:220], group_key=group_key, recipient_user_id=user_id,
                to_number_enc=encrypt_field(to_number), to_hash=number_hash(to_number),
                recipient_tz=tz if is_valid_zone(tz) else "UTC", template=template,
                context=_check(dict(context or {})), private_enc=seal(private) if private else None,
                essential=essential, due_at=ensure_utc(due_at), next_attempt_at=ensure_utc(due_at),
                stale_after=ensure_utc(stale_after) if stale_after else None,
                status=SmsStatus.PENDING.value, attempts=0, created_at=now, updated_at=now)


def _by_key(key: str) -> SmsMessage | None:
    return db.session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == key))


def queue_for_user(sms: dict, *, email_key: str, user_id: int | None, tz: str | None, due_at: datetime,
                   now: datetime, group_key: str | None) -> SmsMessage | None:
    """The SMS twin of a reminder email, if the person opted in with a verified number.
    ``sms`` = {"template": ..., "stale_after": datetime | None, **plain context}; without an account
    (``user_id`` None) its ``consultation_id`` names the guest's booking whose number is texted."""
    fields = dict(sms)
    template, stale = fields.pop("template"), fields.pop("stale_after", None)
    consultation_id = fields.pop("consultation_id", None)
    number = verified_number(user_id) if user_id else verified_number(None, consultation_id)
    if number is None:
        return None
    return enqueue(template=template, dedupe_key=email_key[:200] + SMS_SUFFIX, to_number=number, user_id=user_id,
                   tz=tz, context=fields, due_at=due_at, now=now, group_key=group_key, stale_after=stale)


def stored_spec(sms: dict) -> dict:
    """``sms`` as kept on its email row (``OutboxMessage.sms_spec``): plain JSON, never clinical."""
    spec = _check(dict(sms))
    stale = spec.get("stale_after")
    if isinstance(stale, datetime):
        spec["stale_after"] = ensure_utc(stale).isoformat()
    return spec


def moved_spec(spec: dict, old_due: datetime, new_due: datetime) -> dict:
    """A rescheduled email's kept spec: its ``stale_after`` moves by as much (as ``reschedule`` does)."""
    if not spec.get("stale_after"):
        return spec
    shift = ensure_utc(new_due) - ensure_utc(old_due)
    return {**spec, "stale_after": (ensure_utc(datetime.fromisoformat(spec["stale_after"])) + shift).isoformat()}


def queue_pending_twins(user_id: int, now: datetime) -> int:
    """A person's number was verified, or SMS turned back on: the SMS twins of their reminder emails
    still pending and ahead (those with a kept ``sms_spec``), under the same keys (``"<key>:sms"``),
    so never two. A twin cancelled earlier (STOP, SMS off, the number removed) is queued again to the
    number of now; a pending one is pointed at it; a sent one stays sent. None for an email that was
    cancelled or sent, nor once its event has started (``stale_after``); quiet hours are the
    dispatcher's, as for any twin. Returns the number of twins queued or re-queued."""
    number = verified_number(user_id) if user_id else None
    if number is None:
        return 0
    emails = list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient_user_id == user_id,
                                    OutboxMessage.status == OutboxStatus.PENDING.value,
                                    OutboxMessage.sms_spec.is_not(None), OutboxMessage.due_at > now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)))
    if not emails:
        return 0
    keys = {m.dedupe_key[:200] + SMS_SUFFIX: m for m in emails}
    twins = {t.dedupe_key: t for t in db.session.scalars(
        select(SmsMessage).where(SmsMessage.dedupe_key.in_(list(keys))).with_for_update())}
    digest, count, new_rows = number_hash(number), 0, []
    for key, email in keys.items():
        fields = dict(email.sms_spec)
        template, stale = fields.pop("template", None), fields.pop("stale_after", None)
        stale_at = ensure_utc(datetime.fromisoformat(stale)) if stale else None
        fields.pop("consultation_id", None)
        if template not in TEMPLATES or (stale_at is not None and stale_at <= ensure_utc(now)):
            continue
        twin = twins.get(key)
        if twin is None:
            new_rows.append(dict(template=template, dedupe_key=key, to_number=number, user_id=user_id,
                                 tz=email.recipient_tz, context=fields, private=None, due_at=email.due_at, now=now,
                                 essential=False, group_key=email.group_key, stale_after=stale_at))
        elif twin.status == SmsStatus.CANCELLED.value:
            twin.status, twin.cancelled_at, twin.last_error, twin.attempts = SmsStatus.PENDING.value, None, None, 0
            twin.to_number_enc, twin.to_hash = encrypt_field(number), digest
            twin.recipient_tz, twin.context = email.recipient_tz, _check(fields)
            twin.due_at = twin.next_attempt_at = ensure_utc(email.due_at)
            twin.stale_after, twin.updated_at = stale_at, now
            count += 1
        elif twin.status == SmsStatus.PENDING.value and twin.to_hash != digest:
            twin.to_number_enc, twin.to_hash, twin.updated_at = encrypt_field(number), digest, now
    db.session.flush()
    return count + _insert_all(new_rows)


def _insert_all(rows: list[dict]) -> int:
    """New rows (``_values`` arguments): on PostgreSQL one multi-row INSERT that skips a key queued
    meanwhile (the same rule as ``enqueue``); elsewhere one ``enqueue`` each."""
    if not rows:
        return 0
    if db.session.get_bind().dialect.name == "postgresql":
        result = db.session.execute(pg_insert(SmsMessage.__table__).values([_values(**r) for r in rows])
                                    .on_conflict_do_nothing(index_elements=["dedupe_key"])
                                    .returning(SmsMessage.__table__.c.id))
        return len(result.all())
    for r in rows:
        enqueue(**r)
    return len(rows)


def cancel(*, dedupe_keys: Iterable[str] = (), group_key: str | None = None, user_id: int | None = None,
           to_hash: str | None = None, now: datetime, reason: str | None = None) -> int:
    """Cancel pending SMS by email dedupe keys (their twins), group, person or number."""
    conds = []
    keys = [k[:200] + SMS_SUFFIX for k in dedupe_keys]
    if keys:
        conds.append(SmsMessage.dedupe_key.in_(keys))
    if group_key:
        conds.append(SmsMessage.group_key == group_key)
    if user_id:
        conds.append(SmsMessage.recipient_user_id == user_id)
    if to_hash:
        conds.append(SmsMessage.to_hash == to_hash)
    if not conds:
        return 0
    result = db.session.execute(
        update(SmsMessage).where(or_(*conds), SmsMessage.status == SmsStatus.PENDING.value)
        .values(status=SmsStatus.CANCELLED.value, cancelled_at=now, updated_at=now, private_enc=None,
                last_error=reason).execution_options(synchronize_session="fetch"))
    return result.rowcount or 0


def retarget(*, group_key: str, user_id: int, to_number: str | None, now: datetime) -> int:
    """A guest's booking joined an account: its pending texts (``group_key``) now belong to the
    account, sent to ``to_number`` (the number that moved, or the account's own), or are cancelled
    when there is none to text."""
    pending = (SmsMessage.group_key == group_key, SmsMessage.recipient_user_id.is_(None),
               SmsMessage.status == SmsStatus.PENDING.value)
    if to_number is None:
        values = dict(status=SmsStatus.CANCELLED.value, cancelled_at=now, last_error="the booking joined an account "
                      "without SMS reminders")
    else:
        values = dict(to_number_enc=encrypt_field(to_number), to_hash=number_hash(to_number))
    result = db.session.execute(update(SmsMessage).where(*pending).values(recipient_user_id=user_id, updated_at=now,
                                                                          **values)
                                .execution_options(synchronize_session="fetch"))
    return result.rowcount or 0


def reschedule(email_key: str, due_at: datetime, *, now: datetime, context: dict | None = None) -> int:
    """Move the pending SMS twin of a rescheduled email; its ``stale_after`` moves by as much (the
    event moves with its reminder)."""
    msg = db.session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == email_key[:200] + SMS_SUFFIX,
                                                     SmsMessage.status == SmsStatus.PENDING.value).with_for_update())
    if msg is None:
        return 0
    due_at = ensure_utc(due_at)
    if msg.stale_after is not None:
        msg.stale_after = ensure_utc(msg.stale_after) + (due_at - ensure_utc(msg.due_at))
    msg.due_at = msg.next_attempt_at = due_at
    if context is not None:
        msg.context = _check(dict(context))
    msg.updated_at = now
    return 1


def code_of(msg: SmsMessage) -> str | None:
    """The sealed verification code of an unsent message (tests read it here)."""
    return unseal(msg.private_enc)[0].get("code") if msg.private_enc else None


# Operators -----------------------------------------------------------------------------------


def list_messages(*, status: str | None = None, limit: int = 200) -> list[SmsMessage]:
    stmt = select(SmsMessage).order_by(SmsMessage.next_attempt_at.desc(), SmsMessage.id.desc())
    if status:
        if status not in {s.value for s in SmsStatus}:
            raise ValidationFailed(f"Unknown status {status!r}.", field="status")
        stmt = stmt.where(SmsMessage.status == status)
    return list(db.session.scalars(stmt.limit(max(1, min(limit, 1000)))))


def count_by_status() -> dict[str, int]:
    from sqlalchemy import func

    counts = {s.value: 0 for s in SmsStatus}
    counts.update(dict(db.session.execute(select(SmsMessage.status, func.count()).group_by(SmsMessage.status)).all()))
    return counts


def masked(number: str) -> str:
    """"+49 ••• 4567": the country code and the last four digits, enough to tell numbers apart."""
    try:
        country = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        return "•••"
    return f"+{country} ••• {number[-4:]}" if len(number) > 7 else "•••"
