"""Who hears about a clinical event, and how: emails that say *that* something needs attention,
never what (no clinical details, no names of conditions; the link leads to a signed-in page).

A recipient is a user (their name in the greeting) or, for a provider organisation without an
active member yet, its contact address. Each recipient gets its own dedupe key, so one event
reaches each person once however often it is reported.
"""

from __future__ import annotations

from datetime import datetime

from retreat.accounts import users as accounts
from retreat.accounts.models import User
from retreat.messaging import outbox


def send(recipient: User | str, *, template: str, dedupe_key: str, context: dict, group_key: str | None,
         now: datetime) -> None:
    """Queue ``template`` for one recipient (``<dedupe_key>-u<id>`` for a user, ``-org`` for an address)."""
    if isinstance(recipient, User):
        outbox.enqueue(template=template, dedupe_key=f"{dedupe_key}-u{recipient.id}", to_user=recipient,
                       group_key=group_key, now=now, context={"recipient_name": recipient.name, **context})
    else:
        outbox.enqueue(template=template, dedupe_key=f"{dedupe_key}-org", to_email=recipient,
                       group_key=group_key, now=now, context={"recipient_name": "", **context})


def notify_organization(organization_id: int, *, template: str, dedupe_key: str, context: dict,
                        group_key: str | None, now: datetime) -> None:
    """``send`` to each of a provider organisation's contacts (``accounts.users.provider_contacts``)."""
    for recipient in accounts.provider_contacts(organization_id):
        send(recipient, template=template, dedupe_key=dedupe_key, context=context, group_key=group_key, now=now)
