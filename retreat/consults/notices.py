"""The messages of a consult: confirmation with an .ics invite, reminders 24 h and 1 h before,
facilitator notices and cancellations, written to the outbox in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from retreat.consults.manage import change_deadline
from retreat.consults.models import (
    Consultation,
)
from retreat.core import urls
from retreat.messaging import outbox, sms_outbox
from retreat.messaging.ics import event_spec
from retreat.timeutil import email_time

REMINDERS = (("24h", timedelta(hours=24), "tomorrow"), ("1h", timedelta(hours=1), "in one hour"))


def ics_for(consult: Consultation, *, method: str = "REQUEST", manage_link: str | None = None) -> dict:
    settings = consult.settings
    video = settings.video_link if settings else None
    practice = current_app.config.get("PRACTICE_NAME", "retreat")
    lines = [f"Free consultation with {consult.facilitator.name} ({practice})."]
    if video:
        lines.append(f"Join the video call: {video}")
    if manage_link:
        lines.append(f"Reschedule or cancel: {manage_link}")
    return event_spec(
        uid=consult.calendar_uid, start=consult.start_at, end=consult.end_at, sequence=consult.sequence,
        method=method, summary=f"Free consultation with {consult.facilitator.name}",
        description="\n".join(lines), location=video or "", url=video or "",
        organizer_email=consult.facilitator.email, organizer_name=consult.facilitator.name,
        attendee_email=consult.guest_email, attendee_name=consult.guest_name,
    )


def guest_group(consult: Consultation) -> str:
    return f"consult:{consult.id}"


def _context(consult: Consultation, *, tz: str, manage_link: str | None, base_url: str, event: str,
             now: datetime) -> dict:
    """What the messages of a consult say. ``change_until`` is empty once the change deadline has
    passed (a booking made inside the cutoff): the email then says how to change it instead."""
    settings = consult.settings
    deadline = change_deadline(consult, settings)
    return {
        "consult_id": consult.id, "event": event, "guest_name": consult.guest_name,
        "facilitator_name": consult.facilitator.name, "when": email_time(consult.start_at, tz), "tz": tz,
        "start": consult.start_at.isoformat(), "end": consult.end_at.isoformat(),
        "duration_minutes": int((consult.end_at - consult.start_at).total_seconds() // 60),
        "video_link": settings.video_link if settings else None, "manage_url": manage_link,
        "change_until": email_time(deadline, tz) if deadline > now else "",
        "book_url": base_url.rstrip("/") + urls.CONSULT_BOOKING_PATH,
    }


def queue_guest_messages(consult: Consultation, link: str, *, now: datetime, base_url: str, event: str,
                         claim_link: str | None = None) -> None:
    """Confirmation (booked or rescheduled) with the invite, then the reminders still ahead. A guest
    record's confirmation carries the "this was me" link (``claim_link``), the reminders do not.

    Both links are capabilities: they are sealed in the outbox (``private``, and the invite's
    description that names the manage link in ``private_ics``), never stored in the plain context."""
    ctx = _context(consult, tz=consult.guest_tz, manage_link=None, base_url=base_url, event=event, now=now)
    common = dict(to_user=consult.participant, to_email=consult.guest_email, to_name=consult.guest_name,
                  tz=consult.guest_tz, group_key=guest_group(consult), private={"manage_url": link}, now=now)
    prefix = f"consult-{consult.id}-s{consult.sequence}"
    texts_guest = event != "booked"  # a new booking has no number of its own yet: nothing to look up
    confirmation_private = {**common["private"], **({"claim_url": claim_link} if claim_link else {})}
    outbox.enqueue(template="consult_confirmation", dedupe_key=f"{prefix}-confirmation", context=ctx,
                   ics=ics_for(consult), private_ics={"description": ics_for(consult, manage_link=link)["description"]},
                   **{**common, "private": confirmation_private})
    for label, before, lead in REMINDERS:
        due = consult.start_at - before
        if due > now:
            outbox.enqueue(template="consult_reminder", dedupe_key=f"{prefix}-reminder-{label}", due_at=due,
                           context={**ctx, "lead": lead}, sms=_sms(consult, lead, base_url, guest=texts_guest),
                           **common)


def queue_reminder_texts(consult: Consultation, *, now: datetime, base_url: str) -> None:
    """The SMS twins of the reminders still ahead, for a number verified after they were queued."""
    prefix = f"consult-{consult.id}-s{consult.sequence}"
    for label, before, lead in REMINDERS:
        due = consult.start_at - before
        if due > now:
            sms_outbox.queue_for_user(_sms(consult, lead, base_url), email_key=f"{prefix}-reminder-{label}",
                                      user_id=consult.participant_id, tz=consult.guest_tz, due_at=due, now=now,
                                      group_key=guest_group(consult))


def _sms(consult: Consultation, lead: str, base_url: str, *, guest: bool = True) -> dict:
    """The reminder's SMS twin, queued only for a verified number: the account's, or for a guest
    record the booking's own (``consults.guest_phone``). No capability link: the portal, or for a
    guest the booking's token-free page (it opens in the browser that holds the manage link). Never
    sent once the consult has started."""
    sms = {"template": "consult_reminder", "lead": lead, "start": consult.start_at.isoformat(),
           "link": base_url.rstrip("/") + urls.PARTICIPANT_HOME_PATH, "stale_after": consult.start_at}
    if guest and consult.participant_id is None:
        sms.update(consultation_id=consult.id, link=f"{base_url.rstrip('/')}/consult/booking/{consult.id}")
    return sms


def queue_guest_cancellation(consult: Consultation, *, by: str, now: datetime, base_url: str) -> None:
    """The guest's pending messages (reminders) withdrawn, and the cancellation with a CANCEL invite."""
    outbox.cancel(group_key=guest_group(consult), now=now)
    ctx = _context(consult, tz=consult.guest_tz, manage_link=None, base_url=base_url, event="cancelled", now=now)
    ctx["cancelled_by"] = by
    outbox.enqueue(template="consult_cancelled", to_user=consult.participant, to_email=consult.guest_email,
                   to_name=consult.guest_name, tz=consult.guest_tz,
                   dedupe_key=f"consult-{consult.id}-s{consult.sequence}-cancelled", context=ctx,
                   ics=ics_for(consult, method="CANCEL"), now=now)


def queue_facilitator_notice(consult: Consultation, *, now: datetime, base_url: str, event: str,
                              previous_when: str | None = None) -> None:
    settings = consult.settings
    tz = settings.tz if settings else consult.facilitator.tz
    ctx = _context(consult, tz=tz, manage_link=None, base_url=base_url, event=event, now=now)
    ctx.update(previous_when=previous_when, guest_email=consult.guest_email,
               portal_url=f"{base_url.rstrip('/')}/facilitator/consults/{consult.id}")
    outbox.enqueue(template="consult_facilitator_notice", to_user=consult.facilitator, tz=tz,
                   dedupe_key=f"consult-{consult.id}-s{consult.sequence}-facilitator-{event}", context=ctx,
                   group_key=f"consult:{consult.id}:facilitator",
                   ics=ics_for(consult, method="CANCEL" if event == "cancelled" else "REQUEST"), now=now)
