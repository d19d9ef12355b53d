"""Capability links in the outbox: sealed, never stored in clear.

A password reset, email verification, consult manage or follow-up answer link is a capability:
whoever holds it can act as the person it was sent to. Such entries are queued as ``private``
context (and ``private_ics`` calendar fields) and stored encrypted with ``core.crypto`` in
``outbox_messages.private_enc``; the plain ``context`` and ``ics`` columns, which the admin's
outbox pages, ``flask messages list`` and logs may show, never hold them.

Why sealed tokens rather than references re-issued at send time: a consult's manage token is
random and only its hash is kept on the consult, so issuing it again while rendering would replace
the hash and kill the link of every earlier email (the confirmation, once its 24 h reminder goes
out) and of the first copy of a message sent twice. Sealing the exact token the flow issued keeps
"nothing is ever lost" and at-least-once dispatch:

- every send of one message carries the same working link: a failed message keeps its sealed
  entries, so an operator's retry still has the link; a message sent again after a dispatcher
  died between the SMTP server's acceptance and marking it sent still has them too;
- the dispatcher takes a snapshot of the ciphertext when it claims a row and decrypts it only
  while rendering; a second dispatcher that reclaimed the row after its lease ran out holds its
  own snapshot, so its duplicate send carries the link even if the first marks the row sent;
- the entries are cleared in the same UPDATE that marks a row sent or cancelled: a sent
  message's link lives on in the email, not in the database.
"""

from __future__ import annotations

import json

from retreat.core.crypto import decrypt_field, encrypt_field


def seal(private: dict | None = None, private_ics: dict | None = None) -> str | None:
    """The encrypted form of a message's private entries (None when there are none)."""
    payload = {k: v for k, v in (("context", private), ("ics", private_ics)) if v}
    return encrypt_field(json.dumps(payload, separators=(",", ":"))) if payload else None


def unseal(token: str | None) -> tuple[dict, dict]:
    """(private context, private calendar fields) of a sealed value."""
    if not token:
        return {}, {}
    payload = json.loads(decrypt_field(token))
    return dict(payload.get("context") or {}), dict(payload.get("ics") or {})


def opened(context: dict | None, ics: dict | None, token: str | None) -> tuple[dict, dict | None]:
    """A message's context and invite as rendered: the plain values with the sealed ones over them."""
    private, private_ics = unseal(token)
    merged_ics = {**ics, **private_ics} if ics else None
    return {**(context or {}), **private}, merged_ics


def context_of(msg) -> dict:
    """The full context an ``OutboxMessage`` renders with (tests and previews read links here)."""
    return opened(msg.context, msg.ics, msg.private_enc)[0]


def ics_of(msg) -> dict | None:
    return opened(msg.context, msg.ics, msg.private_enc)[1]
