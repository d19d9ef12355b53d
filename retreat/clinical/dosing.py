"""The writes on a dosing record: one function, ``write``, for every entry the board makes.

Each write carries the client's idempotency key (a UUID the browser made when the entry was typed)
and the record version the clinician was looking at. Under the record's row lock:

- a key already stored returns that stored entry (a replay from the offline queue is stored once);
- a version other than the record's current one is refused as stale (409), with both versions, and
  nothing is written: the clinician sees what changed and sends again;
- otherwise the entry is validated against the record's state (no check for someone not checked in,
  no dose while a reading holds it, no discharge before the dose), stored encrypted, and the version
  goes up by one.

Clinical content is encrypted into ``DosingEntry.body_enc``; nothing clinical is returned in errors
beyond field messages.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from retreat import audit
from retreat.accounts.models import User
from retreat.clinical import readiness, safety, staffing, vitals
from retreat.clinical.dosing_models import DosingAssignment, DosingEntry, DosingRecord, DosingState, EntryKind
from retreat.cohorts.models import CohortSession, Enrollment
from retreat.core import locking, signals
from retreat.core.context import RequestContext
from retreat.core.crypto import encrypt_field
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db

ROUTES = {"sublingual": "Sublingual (lozenge or troche)", "im": "Intramuscular injection",
          "iv": "IV infusion", "other": "Other"}
UNITS = ("mg", "mg/kg", "mcg", "mL")
SEVERITIES = ("mild", "moderate", "severe")
DISCHARGE_CRITERIA = {
    "alert_oriented": "Alert and oriented",
    "vitals_in_range": "Vital signs back in range",
    "walks_steadily": "Walks steadily",
    "driver_present": "The named driver is present at pickup",
}
TEXT_MAX = 1000
_AFTER_CHECK_IN = (DosingState.CHECKED_IN, DosingState.PRE_CHECKS_DONE, DosingState.DOSED,
                   DosingState.IN_SESSION, DosingState.RECOVERING)
_MONITORED = (DosingState.DOSED, DosingState.IN_SESSION)


class StaleWrite(Conflict):
    """The record changed since the clinician loaded it."""

    status = 409

    def __init__(self, record: DosingRecord, expected: int | None, submitted: dict):
        super().__init__(f"Someone else updated this person meanwhile (you saw version {expected}, it is now "
                         f"version {record.version}). Nothing was saved; review and send again.")
        self.current_version = record.version
        self.expected_version = expected
        self.submitted = submitted


@dataclass(frozen=True)
class WriteResult:
    entry: DosingEntry
    record: DosingRecord
    replayed: bool


def record_for(session: CohortSession, enrollment: Enrollment) -> DosingRecord:
    """The person's record at this session, created on first use (a concurrent creation wins once)."""
    if enrollment.cohort_id != session.cohort_id:
        raise NotFound("No such participant in this session.")
    stmt = select(DosingRecord).where(DosingRecord.session_id == session.id,
                                      DosingRecord.enrollment_id == enrollment.id)
    row = db.session.scalar(stmt)
    if row is not None:
        return row
    row = DosingRecord(session_id=session.id, enrollment_id=enrollment.id, state=DosingState.NOT_ARRIVED,
                       version=1)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        row = db.session.scalar(stmt)
    return row


def display_state(record: DosingRecord, now: datetime) -> DosingState:
    if record.state in _MONITORED and record.next_check_due_at is not None and record.next_check_due_at < now:
        return DosingState.CHECK_OVERDUE
    return DosingState(record.state)


def parse_key(raw) -> str:
    try:
        return str(uuid.UUID(str(raw or "").strip()))
    except ValueError:
        raise ValidationFailed("The entry has no valid idempotency key (a UUID).", field="idempotency_key") from None


def parse_version(raw) -> int:
    text = str(raw if raw is not None else "").strip()
    if not text.isdigit() or not (1 <= int(text) < 2**31):
        raise ValidationFailed("The form is missing the version it was based on; reload the board.",
                               field="expected_version")
    return int(text)


def write(record: DosingRecord, kind: str, raw: dict, *, idempotency_key, expected_version, actor: User,
          now: datetime, ctx: RequestContext | None = None) -> WriteResult:
    key = parse_key(idempotency_key)
    stored = db.session.scalar(select(DosingEntry).where(DosingEntry.idempotency_key == key))
    if stored is not None:
        return _replay(stored, record)
    try:
        kind = EntryKind(kind)
    except ValueError:
        raise ValidationFailed("Unknown kind of entry.", field="kind") from None
    version = parse_version(expected_version)
    if kind == EntryKind.DISCHARGE:
        # the discharge signal moves the enrollment's check-ins, which locks the enrollment: take it
        # first (LOCK_ORDER puts enrollments before dosing records)
        locking.lock(Enrollment, record.enrollment_id)
    locked = locking.lock(DosingRecord, record.id)
    stored = db.session.scalar(select(DosingEntry).where(DosingEntry.idempotency_key == key))
    if stored is not None:  # the same entry arrived twice at once: the first one is the one
        return _replay(stored, locked)
    if version != locked.version:
        raise StaleWrite(locked, version, {"kind": kind.value})
    body = _APPLY[kind](locked, raw, now, actor)
    locked.version += 1
    assignment_licence = _licence_of(locked.session, actor)
    entry = DosingEntry(record_id=locked.id, kind=kind, idempotency_key=key,
                        body_enc=encrypt_field(json.dumps(body, sort_keys=True)), actor_id=actor.id,
                        license_id=assignment_licence, at=now, recorded_at=now, version_after=locked.version)
    db.session.add(entry)
    db.session.flush()
    audit.record(f"dosing.{kind.value}", actor=actor, object_type="dosing_record", object_id=locked.id,
                 details={"version": locked.version}, ctx=ctx)
    if kind == EntryKind.ADVERSE_EVENT and body["severity"] == "severe":
        safety.raise_dosing_alert(locked.enrollment, now=now, event_key=str(entry.id))
    if kind == EntryKind.DISCHARGE:
        signals.participant_discharged.send(locked.enrollment, cohort_session_id=locked.session_id,
                                            discharged_at=now, actor=actor)
    return WriteResult(entry, locked, False)


def _replay(stored: DosingEntry, record: DosingRecord) -> WriteResult:
    if stored.record_id != record.id:
        raise Conflict("That idempotency key was already used for another person's entry.", field="idempotency_key")
    return WriteResult(stored, stored.record, True)


def _licence_of(session: CohortSession, actor: User) -> int | None:
    accepted = staffing.settings_for(actor.provider_organization).accepted_kinds
    lic = staffing.covering_licence(actor, session, accepted)
    return lic.id if lic else None


def _thresholds(record: DosingRecord) -> tuple[vitals.Thresholds, int]:
    s = staffing.settings_for(record.session.cohort.provider_organization)
    return (vitals.Thresholds(s.hold_systolic, s.hold_diastolic, s.hr_high, s.hr_low, s.spo2_low),
            s.check_interval_minutes)


def _text(raw: dict, field: str, label: str, *, required: bool) -> str:
    text = str(raw.get(field) or "").strip()
    if "\x00" in text:
        raise ValidationFailed(f"{label} contains a character that is not allowed.", field=field)
    if len(text) > TEXT_MAX:
        raise ValidationFailed(f"Keep {label.lower()} under {TEXT_MAX} characters.", field=field)
    if required and not text:
        raise ValidationFailed(f"Enter {label.lower()}.", field=field)
    return text


def _need(record: DosingRecord, states, message: str) -> None:
    if record.state not in states:
        raise ValidationFailed(message, field="state")


def _check_in(rec, raw, now, actor):
    _need(rec, (DosingState.NOT_ARRIVED,), "This person is already checked in.")
    reason = _text(raw, "override_reason", "The override reason", required=False)
    ready = readiness.readiness(rec.session, [rec.enrollment])[rec.enrollment_id]
    if not ready.ready and not reason:
        raise ValidationFailed(f"Cannot check in: {'; '.join(ready.missing)}. An assigned clinician may "
                               "override with a written reason.", field="override_reason")
    if reason and not db.session.scalar(select(DosingAssignment.id).where(
            DosingAssignment.session_id == rec.session_id, DosingAssignment.clinician_id == actor.id)):
        raise ValidationFailed("Only a clinician assigned to this session can override the readiness gate.",
                               field="override_reason")
    rec.state, rec.checked_in_at, rec.overridden = DosingState.CHECKED_IN, now, bool(reason)
    return {"override_reason": reason} if reason else {}


def _pre_vitals(rec, raw, now, actor):
    _need(rec, (DosingState.CHECKED_IN, DosingState.PRE_CHECKS_DONE),
          "Pre-session vitals are taken after check-in and before the dose.")
    v = vitals.parse_vitals(raw)
    t, _ = _thresholds(rec)
    rec.state, rec.dose_held = DosingState.PRE_CHECKS_DONE, vitals.holds_dose(v, t)
    return {**v, "flags": vitals.flags(v, t)}


def _hold_confirmed(rec, raw, now, actor):
    if not rec.dose_held:
        raise ValidationFailed("No reading is holding this dose.", field="state")
    rec.dose_held = False
    return {"reason": _text(raw, "reason", "The clinical reason", required=True)}


def _dose(rec, raw, now, actor):
    _need(rec, (DosingState.PRE_CHECKS_DONE,), "Record the pre-session vitals before the dose.")
    if rec.dose_held:
        raise ValidationFailed("A pre-session reading holds the dose until a clinician confirms.", field="state")
    errors: dict[str, list[str]] = {}
    medicine = str(raw.get("medicine") or "").strip()[:TEXT_MAX + 1]
    if not medicine or len(medicine) > 120 or "\x00" in medicine:
        errors["medicine"] = ["Enter the medicine (up to 120 characters)."]
    route = str(raw.get("route") or "").strip()
    if route not in ROUTES:
        errors["route"] = ["Choose the route: sublingual, IM, IV or other."]
    unit = str(raw.get("unit") or "").strip()
    if unit not in UNITS:
        errors["unit"] = [f"Choose the unit ({', '.join(UNITS)})."]
    try:
        amount = Decimal(str(raw.get("amount") or "").strip())
        if not amount.is_finite() or not (0 < amount <= 10000):
            raise InvalidOperation
    except InvalidOperation:
        errors["amount"] = ["Enter the amount as a positive number."]
    if errors:
        raise ValidationFailed("Check the dose.", errors=errors)
    _, interval = _thresholds(rec)
    rec.state, rec.dosed_at, rec.next_check_due_at = DosingState.DOSED, now, now + timedelta(minutes=interval)
    return {"medicine": medicine, "route": route, "amount": str(amount), "unit": unit,
            "note": _text(raw, "note", "The note", required=False)}


def _check(rec, raw, now, actor):
    if rec.state in (DosingState.NOT_ARRIVED,):
        raise ValidationFailed("This person is not checked in.", field="state")
    _need(rec, _MONITORED + (DosingState.RECOVERING,), "Observation checks start after the dose.")
    _, interval = _thresholds(rec)
    if rec.state == DosingState.DOSED:
        rec.state = DosingState.IN_SESSION
    rec.next_check_due_at = now + timedelta(minutes=interval)
    return {"observation": _text(raw, "observation", "The observation", required=True)}


def _adverse_event(rec, raw, now, actor):
    _need(rec, _AFTER_CHECK_IN, "Adverse events are recorded for people checked in and not yet discharged.")
    severity = str(raw.get("severity") or "").strip()
    if severity not in SEVERITIES:
        raise ValidationFailed("Choose the severity: mild, moderate or severe.", field="severity")
    body = {"event": _text(raw, "event", "What happened", required=True), "severity": severity,
            "action": _text(raw, "action", "The action taken", required=True)}
    if severity != "mild":
        rec.needs_attention = True
    return body


def _recovery(rec, raw, now, actor):
    _need(rec, _MONITORED, "Recovery starts after the dose.")
    rec.state, rec.next_check_due_at = DosingState.RECOVERING, None
    return {}


def _post_vitals(rec, raw, now, actor):
    _need(rec, (DosingState.RECOVERING,), "Post-session vitals are taken in recovery.")
    v = vitals.parse_vitals(raw)
    t, _ = _thresholds(rec)
    return {**v, "flags": vitals.flags(v, t)}


def _discharge(rec, raw, now, actor):
    if rec.dosed_at is None:
        raise ValidationFailed("A discharge comes after the dose; none is recorded.", field="state")
    _need(rec, (DosingState.RECOVERING,), "Move the person to recovery and take post-session vitals first.")
    if db.session.scalar(select(DosingEntry.id).where(DosingEntry.record_id == rec.id,
                                                      DosingEntry.kind == EntryKind.POST_VITALS).limit(1)) is None:
        raise ValidationFailed("Record the post-session vitals before the discharge.", field="state")
    missing = {f: [f"Confirm: {label}."] for f, label in DISCHARGE_CRITERIA.items()
               if str(raw.get(f) or "").lower() not in ("y", "yes", "on", "true", "1")}
    if missing:
        raise ValidationFailed("Every discharge criterion must be met.", errors=missing)
    note = _text(raw, "note", "The note", required=False)
    # the named driver the person gave (preparation); without one, the note says who picked them up
    driver = readiness.readiness(rec.session, [rec.enrollment])[rec.enrollment_id].driver
    if not driver and not note:
        raise ValidationFailed("No driver is named for this person: write in the note who picks them up.",
                               field="note")
    rec.state, rec.discharged_at, rec.next_check_due_at = DosingState.DISCHARGED, now, None
    return {**{f: True for f in DISCHARGE_CRITERIA}, "driver": driver, "note": note}


def _transfer(rec, raw, now, actor):
    _need(rec, _AFTER_CHECK_IN, "Only a person checked in and not discharged can be transferred.")
    rec.state, rec.next_check_due_at, rec.needs_attention = DosingState.TRANSFERRED, None, True
    return {"destination": _text(raw, "destination", "The hospital", required=True)}


def _note(rec, raw, now, actor):
    shared = str(raw.get("shared") or "").lower() in ("y", "yes", "on", "true", "1")
    text = _text(raw, "note", "The note", required=True)
    if shared:
        rec.shared_note_enc = encrypt_field(text)
    return {"note": text, "shared": shared}


_APPLY = {
    EntryKind.CHECK_IN: _check_in, EntryKind.OVERRIDE: _check_in, EntryKind.PRE_VITALS: _pre_vitals,
    EntryKind.HOLD_CONFIRMED: _hold_confirmed, EntryKind.DOSE: _dose, EntryKind.CHECK: _check,
    EntryKind.ADVERSE_EVENT: _adverse_event, EntryKind.RECOVERY: _recovery,
    EntryKind.POST_VITALS: _post_vitals, EntryKind.DISCHARGE: _discharge, EntryKind.TRANSFER: _transfer,
    EntryKind.NOTE: _note,
}
