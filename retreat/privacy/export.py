"""A participant's own data, exported for them: everything held about them, as JSON and as a
readable page.

Each domain registers the section it owns in ``core.personal_data`` (its ``data_export`` module,
imported by ``retreat.subscriptions``); this module asks every section in turn and puts the answers
together. The clinical sections read through the audited paths (``clinical.access.read``,
``clinical.dosing_access``), so the export leaves the same audit events as a provider's view, plus
``privacy.exported``. A table that points at a person (their user, enrollment or email) is either
covered by a section or named in ``NOT_EXPORTED`` with the reason: the completeness test fails on a
new table that is neither.

Two exports of one person at once (a double click, two tabs) build it once: see ``guard``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from retreat import audit
from retreat.accounts.models import User
from retreat.clinical.access import refuse
from retreat.core import locking, personal_data
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict
from retreat.extensions import db
from retreat.privacy import deletion_review
from retreat.privacy.models import DataExport
from retreat.timeutil import format_local, now_utc

ACTION = "privacy.exported"

# Tables that point at a person but are not in their export, and why (the completeness test reads it).
NOT_EXPORTED: dict[str, str] = {
    "api_tokens": "staff API tokens (never a participant's); only hashes are stored",
    "totp_recovery_codes": "two-factor recovery codes: hashes of secrets, useless to the person",
    "provider_licenses": "a provider's licence (staff only); clearance decisions name it in the medical section",
    "provider_organizations": "an organisation's contact details, not a person's",
    "availability_rules": "a facilitator's working hours (staff only)",
    "availability_overrides": "a facilitator's time off and extra hours (staff only)",
    "consult_settings": "a facilitator's booking settings (staff only)",
    "cohort_sessions": "the facilitator assigned to a session; the sessions a person attended are in attendance",
    "consent_documents": "the staff member who published a consent text; the signatures are in applications",
    "integration_plans": "a cohort's plan and its circle facilitator, not about a participant",
    "dosing_assignments": "the clinicians a provider assigns to a dosing session (staff only)",
    "enrollment_parties": "the partner's invitation address is the other person's data; the party shows as a seat",
    "payout_lines": "the practice's payouts from Stripe; each line repeats a payment already in payments",
    "reconciliation_runs": "finance's reconciliation runs (staff who ran them)",
    "reconciliation_items": "finance's checks of Stripe against the ledger; the payments themselves are exported",
    "calendar_tombstones": "sessions deleted from a plan, kept so calendar feeds cancel them; they name only the "
                           "session's facilitator (staff)",
    "webhook_endpoints": "the integrations an admin registered (staff who created them)",
    "audit_events": "the append-only audit log, kept as evidence; the reads of their clinical record are in "
                    "access_log",
}


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def deletion_requests_section(person: User, **_) -> dict:
    built = db.session.scalar(select(DataExport).where(DataExport.participant_id == person.id))
    return {"deletion_requests": deletion_review.export_rows(person),
            "earlier_exports": {"times": built.times_built if built else 0,
                                "last_at": _iso(built.finished_at) if built else None}}


personal_data.register_section("deletion_requests", deletion_requests_section, title="Your data requests",
                               covers=("deletion_requests", "data_exports"), order=990)

BUSY = ("Your export is already being prepared (you asked for it a moment ago, perhaps in another tab). "
        "Please wait a few seconds and open it again.")


def prepare(actor: User, participant: User, *, ctx: RequestContext | None, now: datetime,
            clock: Callable[[], datetime] = now_utc) -> dict:
    """The export, built once however many times it is asked for at the same moment.

    The person's ``DataExport`` row is claimed with ``FOR UPDATE SKIP LOCKED``: while one build
    holds it, another ask raises ``Conflict`` (``BUSY``) at once. An ask that had to wait for the
    row's first insert (two asks of a first export) finds that build finished after it asked, and
    is refused the same way. Nothing is written by a refused ask.
    """
    if actor is None or actor.id != participant.id:
        raise refuse(actor, None, "export", ctx=ctx, now=now)
    _ensure_row(participant.id)
    row = db.session.scalar(locking.claim(select(DataExport).where(DataExport.participant_id == participant.id),
                                          postgres_only=True).execution_options(populate_existing=True))
    if row is None or (row.finished_at is not None and row.finished_at > now):
        raise Conflict(BUSY)
    row.started_at = now
    data = export_participant_data(actor, participant, ctx=ctx, now=now)
    row.finished_at = max(now, clock())
    row.times_built += 1
    return data


def _ensure_row(participant_id: int) -> None:
    """Insert the person's row unless it exists. Only a first export inserts (and, asked twice at
    once, waits for the other insert): an existing row is never touched here, since an insert that
    meets it would wait for the build holding it instead of skipping it."""
    if db.session.scalar(select(DataExport.id).where(DataExport.participant_id == participant_id)) is not None:
        return
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(insert(DataExport.__table__).values(participant_id=participant_id, times_built=0)
                       .on_conflict_do_nothing(index_elements=["participant_id"]))


def export_participant_data(actor: User, participant: User, *, ctx: RequestContext | None,
                            now: datetime) -> dict:
    """Everything held about ``participant``, for them only (JSON-able): ``generated_at``,
    ``time_zone``, ``contents`` (each section's title and keys), then every section's keys."""
    if actor is None or actor.id != participant.id:
        raise refuse(actor, None, "export", ctx=ctx, now=now)
    out: dict = {"generated_at": _iso(now), "time_zone": participant.tz or "UTC", "contents": []}
    for section in personal_data.sections():
        part = section.build(participant, ctx=ctx, now=now)
        clash = set(part) & set(out)
        if clash:
            raise RuntimeError(f"export section {section.name!r} repeats the keys {sorted(clash)}")
        out["contents"].append({"section": section.name, "title": section.title, "keys": list(part)})
        out.update(part)
    audit.record(ACTION, actor=actor, object_type="user", object_id=participant.id,
                 details={"sections": len(out["contents"])}, ctx=ctx, now=now)
    return out


_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")


def _local(value, tz: str):
    """``value`` with every ISO date-time string written in the person's zone."""
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        return format_local(datetime.fromisoformat(value), tz)
    if isinstance(value, dict):
        return {k: _local(v, tz) for k, v in value.items()}
    if isinstance(value, list):
        return [_local(v, tz) for v in value]
    return value


def readable(data: dict) -> dict:
    """The export as the readable page shows it: when it was made, and per section its title and,
    per key, a label and the value; every time in the person's zone."""
    tz = data.get("time_zone") or "UTC"
    return {"generated_at": _local(data["generated_at"], tz), "time_zone": tz,
            "sections": [{"title": c["title"], "name": c["section"],
                          "parts": [{"label": key.replace("_", " ").capitalize(), "value": _local(data[key], tz)}
                                    for key in c["keys"]]}
                         for c in data["contents"]]}


PERSON_KEYS = ("users.id", "enrollments.id")  # a column referencing one of these points at a person


def points_at_a_person(table) -> bool:
    """A table with a column referencing a user or an enrollment, or holding an email address."""
    return any(any(fk.target_fullname in PERSON_KEYS for fk in col.foreign_keys) or "email" in col.name
               for col in table.columns)


def uncovered_tables(metadata) -> list[str]:
    """Tables of ``metadata`` that point at a person but are neither exported by a section nor named
    in ``NOT_EXPORTED`` (the completeness test wants none)."""
    known = personal_data.covered_tables() | set(NOT_EXPORTED)
    return sorted(t.name for t in metadata.tables.values() if points_at_a_person(t) and t.name not in known)
