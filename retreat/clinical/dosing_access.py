"""The audited read path for dosing-day clinical content (vitals, doses, checks, adverse events,
discharge): the participant themself, or a provider of the organisation the cohort is referred to.
Every read writes ``clinical.read`` (section ``dosing``); a refusal writes ``clinical.denied`` and
answers "not found". Facilitators and finance never read it (they get statuses elsewhere)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.clinical.access import refuse
from retreat.clinical.dosing_models import DosingEntry, DosingRecord
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field
from retreat.extensions import db

SECTION = "dosing"


@dataclass(frozen=True)
class EntryView:
    id: int
    kind: str
    at: datetime
    actor_id: int | None
    license_id: int | None
    version_after: int
    body: dict


def basis_for(actor: User | None, record: DosingRecord) -> str | None:
    if actor is None or not actor.is_active:
        return None
    if actor.role == Role.PARTICIPANT:
        return "owner" if actor.id == record.enrollment.participant_id else None
    if actor.role == Role.PROVIDER:
        org_id = record.session.cohort.provider_organization_id
        return "provider" if org_id is not None and actor.provider_organization_id == org_id else None
    return None


def read_entries(actor: User | None, record: DosingRecord, *, ctx: RequestContext | None,
                 now: datetime) -> list[EntryView]:
    basis = basis_for(actor, record)
    if basis is None:
        raise refuse(actor, record.enrollment_id, SECTION, ctx=ctx, now=now)
    entries = db.session.scalars(select(DosingEntry).where(DosingEntry.record_id == record.id)
                                 .order_by(DosingEntry.at, DosingEntry.id))
    out = [EntryView(e.id, e.kind, e.at, e.actor_id, e.license_id, e.version_after,
                     json.loads(decrypt_field(e.body_enc) or "{}")) for e in entries]
    audit.record("clinical.read", actor=actor, object_type="dosing_record", object_id=record.id,
                 details={"participant_id": record.enrollment.participant_id, "enrollment_id": record.enrollment_id,
                          "section": SECTION, "basis": basis}, ctx=ctx, now=now)
    return out


def shared_note(actor: User | None, record: DosingRecord, *, ctx: RequestContext | None, now: datetime) -> str:
    """The note a provider marked shareable with the retreat team (facilitators, the organisation and
    the participant may read it); each read is audited. Empty when nothing was shared."""
    if not record.shared_note_enc:
        return ""
    basis = basis_for(actor, record)
    if basis is None and actor is not None and actor.is_active and actor.role == Role.FACILITATOR:
        basis = "team"
    if basis is None:
        raise refuse(actor, record.enrollment_id, "dosing_shared_note", ctx=ctx, now=now)
    audit.record("clinical.read", actor=actor, object_type="dosing_record", object_id=record.id,
                 details={"participant_id": record.enrollment.participant_id, "enrollment_id": record.enrollment_id,
                          "section": "dosing_shared_note", "basis": basis}, ctx=ctx, now=now)
    return decrypt_field(record.shared_note_enc) or ""


def read_entries_many(actor: User | None, records: list[DosingRecord], *, ctx: RequestContext | None,
                      now: datetime) -> dict[int, list[EntryView]]:
    """``read_entries`` for a whole board: one query for every entry, one audit event per record."""
    for rec in records:
        if basis_for(actor, rec) is None:
            raise refuse(actor, rec.enrollment_id, SECTION, ctx=ctx, now=now)
    out: dict[int, list[EntryView]] = {r.id: [] for r in records}
    if not records:
        return out
    for e in db.session.scalars(select(DosingEntry).where(DosingEntry.record_id.in_(list(out)))
                                .order_by(DosingEntry.at, DosingEntry.id)):
        out[e.record_id].append(EntryView(e.id, e.kind, e.at, e.actor_id, e.license_id, e.version_after,
                                          json.loads(decrypt_field(e.body_enc) or "{}")))
    for rec in records:
        audit.record("clinical.read", actor=actor, object_type="dosing_record", object_id=rec.id,
                     details={"participant_id": rec.enrollment.participant_id, "enrollment_id": rec.enrollment_id,
                              "section": SECTION, "basis": basis_for(actor, rec)}, ctx=ctx, now=now)
    return out
