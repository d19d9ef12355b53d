"""Preparation: the checklist and the consents it asks for.

Checklist: one item per task per enrollment, due relative to the cohort's start, with a reminder
queued in the outbox three days before each due date. Answers here are practical, not clinical
(intention, travel, ride home, dietary and accessibility needs); facilitators see completion per
person, and dietary/accessibility needs.

Consents: versioned documents and typed-name e-signatures. A document's text is stored with its
SHA-256; a signature records the typed full name, the time, the IP address and the hash of
exactly the text signed. Publishing a new version of a kind makes the older one stale:
participants must sign the new version before the retreat (the checklist's "consents" item
re-opens).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import func, select, update

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import EXITS, ChecklistItem, Cohort, ConsentDocument, ConsentSignature, Enrollment
from retreat.core import signals, urls
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.timeutil import format_local

ANSWER_MAX = 2000
REMINDER_DAYS_BEFORE = 3
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,58}$")

@dataclass(frozen=True)
class Task:
    key: str
    title: str
    days_before: int  # due this many days before the cohort starts
    kind: str  # text | ack | consents | driver (a named driver: name + phone)
    help: str
    prompts: tuple[str, ...] = field(default_factory=tuple)
    shared_with_team: bool = False


TASKS: tuple[Task, ...] = (
    Task("intention", "Set your intention", 21, "text",
         "Write a few sentences about what you hope to explore. Only you can read it: your facilitators "
         "see only that this step is done.",
         ("What brings you to this retreat now?", "Which parts of you would you like to get to know?",
          "How would you like to feel when you return home?")),
    Task("consents", "Sign your consents", 14, "consents",
         "Read and sign the current consent documents. A new version needs signing again."),
    Task("emergency_contact", "Emergency contact", 14, "text",
         "Name, relationship and phone number of someone we can call in an emergency.", shared_with_team=True),
    Task("travel", "Travel and arrival", 10, "text",
         "How and when you will arrive, and when you plan to leave.", shared_with_team=True),
    Task("ride_home", "Ride home or companion after dosing days", 7, "driver",
         "Who will drive you home and stay with you after each dosing day (you may not drive that day): "
         "their name and a phone number the team can reach them on at pickup.",
         shared_with_team=True),
    Task("fasting", "Fasting and hydration instructions", 3, "ack",
         "No food for 4 hours and no liquids for 2 hours before each dosing session; drink plenty of water "
         "the day before. Tick to confirm you have read and will follow these instructions."),
    Task("dietary", "Dietary and accessibility needs", 14, "text",
         "Allergies to food, dietary preferences, mobility or access needs (write “none” if none).",
         shared_with_team=True),
)
TASKS_BY_KEY = {t.key: t for t in TASKS}
# Answers the dosing-day readiness relies on: a person to call, so a name and a phone number.
CONTACT_TASKS = {"emergency_contact": "the person's name and phone number"}
DRIVER_NAME_MAX = 120


@dataclass(frozen=True)
class RideHome:
    """The ride home as stored: a named driver (name + E.164 phone), or an older free-text answer
    (``legacy``, kept and shown, but it names no driver the provider can check at pickup)."""

    name: str = ""
    phone: str = ""  # E.164, e.g. +13035550199
    legacy: str = ""

    @property
    def named(self) -> bool:
        return bool(self.name and self.phone)

    @property
    def phone_display(self) -> str:
        """The phone in international format (+1 303-555-0199); the stored text if it does not parse."""
        try:
            return phonenumbers.format_number(phonenumbers.parse(self.phone, None),
                                              phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        except phonenumbers.NumberParseException:
            return self.phone

    @property
    def display(self) -> str:
        return f"{self.name}, {self.phone_display}" if self.named else self.legacy


def ride_home_from(answer: str | None) -> RideHome | None:
    """Read a stored ride-home answer: None when empty; a named driver; or a legacy free text."""
    text = (answer or "").strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("driver_name") and data.get("driver_phone"):
            return RideHome(str(data["driver_name"]), str(data["driver_phone"]))
    return RideHome(legacy=text)


def parse_driver(name: str | None, phone: str | None, *, region: str = "US") -> RideHome:
    """A named driver from a form: name required (at most 120 characters), phone a real number
    (a national number is read in ``region``, the retreat's country), stored as E.164."""
    errors: dict[str, list[str]] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["driver_name"] = ["Enter the driver's name."]
    elif len(name) > DRIVER_NAME_MAX or any(not ch.isprintable() for ch in name):
        errors["driver_name"] = [f"Keep the driver's name to {DRIVER_NAME_MAX} characters, letters and spaces."]
    raw_phone = (phone or "").strip()
    e164 = ""
    if not raw_phone:
        errors["driver_phone"] = ["Enter the driver's phone number."]
    else:
        try:
            parsed = phonenumbers.parse(raw_phone[:40], (region or "US").upper())
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or len(raw_phone) > 40 or not phonenumbers.is_valid_number(parsed):
            errors["driver_phone"] = ["Enter a phone number that can be called, with the country code if it is "
                                      "not in the retreat's country (for example +1 303 555 0199)."]
        else:
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if errors:
        raise ValidationFailed("Check the driver's details.", errors=errors)
    return RideHome(name, e164)


def display_answer(item: ChecklistItem) -> str:
    """An answer as people read it (the named driver as "name, phone")."""
    if TASKS_BY_KEY.get(item.key) is not None and TASKS_BY_KEY[item.key].kind == "driver":
        ride = ride_home_from(item.answer)
        return ride.display if ride else ""
    return item.answer


def _has_name_and_phone(answer: str) -> bool:
    digits = sum(ch.isdigit() for ch in answer)
    letters = sum(ch.isalpha() for ch in answer)
    return 7 <= digits <= 20 and letters >= 2


def create_checklist(enr: Enrollment, cohort: Cohort, *, now: datetime) -> list[ChecklistItem]:
    items = []
    for task in TASKS:
        item = ChecklistItem(enrollment_id=enr.id, key=task.key, due_at=due_at_for(task, cohort, now), answer="",
                             created_at=now, updated_at=now)
        db.session.add(item)
        items.append(item)
    db.session.flush()
    for item in items:
        _queue_reminder(enr, cohort, item, now=now)
    return items


def _queue_reminder(enr: Enrollment, cohort: Cohort, item: ChecklistItem, *, now: datetime) -> None:
    remind_at = item.due_at - timedelta(days=REMINDER_DAYS_BEFORE)
    if remind_at <= now:
        return
    person = enr.participant or db.session.get(User, enr.participant_id)
    outbox.enqueue(template="checklist_reminder", dedupe_key=f"prep-{item.id}-reminder", to_user=person,
                   due_at=remind_at, group_key=f"enrollment:{enr.id}", essential=True, now=now,
                   context=_reminder_context(enr, cohort, item))


def _reminder_context(enr: Enrollment, cohort: Cohort, item: ChecklistItem) -> dict:
    person = enr.participant or db.session.get(User, enr.participant_id)
    return {"participant_name": person.name, "task_title": TASKS_BY_KEY[item.key].title,
            "cohort_title": cohort.title, "due_local": format_local(item.due_at, person.tz, "%a %d %b %Y"),
            "url": f"{urls.base_url()}/me/enrollments/{enr.id}"}


def due_at_for(task: Task, cohort: Cohort, now: datetime) -> datetime:
    """When a task is due: ``days_before`` the cohort starts, never in the past."""
    return max(cohort.starts_at - timedelta(days=task.days_before), now)


@signals.cohort_schedule_changed.connect(order=5)
def _follow_the_start(cohort: Cohort, *, now: datetime, **_) -> None:
    """The cohort's dates moved: open checklist items move with its start, and their pending
    reminders with them (a reminder whose time has passed is cancelled, one now ahead is queued)."""
    items = list(db.session.scalars(select(ChecklistItem).join(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.status.not_in([st.value for st in EXITS]),
        ChecklistItem.completed_at.is_(None))))
    for item in items:
        task = TASKS_BY_KEY.get(item.key)
        due = due_at_for(task, cohort, now) if task else item.due_at
        if due == item.due_at:
            continue
        item.due_at, item.updated_at = due, now
        enr = item.enrollment
        key = f"prep-{item.id}-reminder"
        remind_at = due - timedelta(days=REMINDER_DAYS_BEFORE)
        if remind_at <= now:
            outbox.cancel(dedupe_keys=[key], now=now)
        elif outbox.reschedule(key, remind_at, context=_reminder_context(enr, cohort, item), now=now) is None:
            _queue_reminder(enr, cohort, item, now=now)  # none was queued (it was too late then)


def get_item(enr: Enrollment, key: str) -> ChecklistItem:
    item = db.session.scalar(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id,
                                                         ChecklistItem.key == key))
    if item is None or key not in TASKS_BY_KEY:
        raise NotFound("No such checklist item.")
    return item


def complete(enr: Enrollment, key: str, *, answer: str = "", acknowledged: bool = False,
             driver_name: str | None = None, driver_phone: str | None = None, now: datetime) -> ChecklistItem:
    """Save an answer (or acknowledgement, or named driver). Too long or empty answers change nothing."""
    if not enr.is_active:
        raise Conflict("This application is closed; the checklist can no longer be changed.")
    task = TASKS_BY_KEY.get(key)
    if task is None:
        raise NotFound("No such checklist item.")
    item = get_item(enr, key)
    if task.kind == "consents":
        if not all_signed(enr):
            raise Conflict("Sign every current consent document first.")
        item.answer = ""
    elif task.kind == "ack":
        if not acknowledged:
            raise ValidationFailed("Tick the box to confirm you have read the instructions.", field="acknowledged")
        item.answer = ""
    elif task.kind == "driver":
        ride = parse_driver(driver_name, driver_phone, region=_region_of(enr))
        item.answer = json.dumps({"driver_name": ride.name, "driver_phone": ride.phone}, sort_keys=True)
    else:
        answer = (answer or "").strip()
        if not answer:
            raise ValidationFailed("Please write an answer.", field="answer")
        if len(answer) > ANSWER_MAX:
            raise ValidationFailed(f"Please keep your answer under {ANSWER_MAX} characters "
                                   f"(it has {len(answer)}).", field="answer")
        if key in CONTACT_TASKS and not _has_name_and_phone(answer):
            raise ValidationFailed(f"Please give {CONTACT_TASKS[key]} (for example: Sam Rivera, +1 303 555 0199).",
                                   field="answer")
        item.answer = answer
    item.completed_at = item.completed_at or now
    item.updated_at = now
    outbox.cancel(dedupe_keys=[f"prep-{item.id}-reminder"], now=now)
    return item


def _region_of(enr: Enrollment) -> str:
    cohort = enr.cohort or db.session.get(Cohort, enr.cohort_id)
    retreat = cohort.retreat if cohort is not None else None
    return (getattr(retreat, "country", None) or "US").upper()


def refresh_consent_item(enr: Enrollment, *, now: datetime) -> None:
    """Keep the consents item in step with the signatures (a new version re-opens it)."""
    item = db.session.scalar(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id,
                                                         ChecklistItem.key == "consents"))
    if item is None:
        return
    signed = all_signed(enr)
    if signed and item.completed_at is None:
        item.completed_at = now
        outbox.cancel(dedupe_keys=[f"prep-{item.id}-reminder"], now=now)
    elif not signed and item.completed_at is not None:
        item.completed_at = None


def progress(enr: Enrollment) -> tuple[int, int]:
    items = enr.checklist
    return sum(1 for i in items if i.completed_at is not None), len(items)


def view_items(enr: Enrollment) -> list[dict]:
    return [{"item": i, "task": TASKS_BY_KEY[i.key], "display": display_answer(i),
             "ride": ride_home_from(i.answer) if TASKS_BY_KEY[i.key].kind == "driver" else None}
            for i in enr.checklist if i.key in TASKS_BY_KEY]


# --------------------------------------------------------------------------------------------
# Consents
# --------------------------------------------------------------------------------------------


def text_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _norm_name(name: str) -> str:
    return " ".join((name or "").split()).casefold()


def publish_consent(*, kind: str, title: str, body: str, actor: User | None, now: datetime) -> ConsentDocument:
    kind = (kind or "").strip().lower()
    title = (title or "").strip()
    body = (body or "").replace("\r\n", "\n").strip()
    errors = {}
    if not _KIND_RE.match(kind):
        errors["kind"] = ["Use lower-case letters, digits and dashes (e.g. participation)."]
    if not title or len(title) > 200:
        errors["title"] = ["Give a title of at most 200 characters."]
    if len(body) < 20 or len(body) > 100_000:
        errors["body"] = ["The document text must be between 20 and 100,000 characters."]
    if errors:
        raise ValidationFailed("Check the document.", errors=errors)
    latest = db.session.scalar(select(func.max(ConsentDocument.version)).where(ConsentDocument.kind == kind)) or 0
    doc = ConsentDocument(kind=kind, version=latest + 1, title=title, body=body, sha256=text_hash(body),
                          is_active=True, published_by_id=actor.id if actor else None, created_at=now,
                          updated_at=now)
    db.session.add(doc)
    db.session.flush()
    # Nobody has signed the new version yet: re-open everyone's "sign your consents" item.
    db.session.execute(update(ChecklistItem).where(ChecklistItem.key == "consents",
                                                   ChecklistItem.completed_at.is_not(None))
                       .values(completed_at=None, updated_at=now).execution_options(synchronize_session="fetch"))
    audit.record("consent.published", actor=actor, object_type="consent_document", object_id=doc.id,
                 details={"kind": kind, "version": doc.version, "sha256": doc.sha256}, now=now)
    return doc


def current_consent_documents() -> list[ConsentDocument]:
    """The newest version of each active kind."""
    latest = (select(ConsentDocument.kind, func.max(ConsentDocument.version).label("v"))
              .where(ConsentDocument.is_active.is_(True)).group_by(ConsentDocument.kind).subquery())
    return list(db.session.scalars(select(ConsentDocument).join(
        latest, (ConsentDocument.kind == latest.c.kind) & (ConsentDocument.version == latest.c.v))
        .order_by(ConsentDocument.kind)))


def consent_signatures(enr: Enrollment) -> list[ConsentSignature]:
    return list(db.session.scalars(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id)
                                   .order_by(ConsentSignature.signed_at)))


def consent_status(enr: Enrollment) -> list[dict]:
    """For each current document: signed (this version), needs re-signing (older one signed), or not yet."""
    sigs = consent_signatures(enr)
    by_doc = {s.document_id: s for s in sigs}
    out = []
    for doc in current_consent_documents():
        sig = by_doc.get(doc.id)
        older = any(s.document.kind == doc.kind and s.document.version < doc.version for s in sigs)
        state = "signed" if sig else ("resign" if older else "unsigned")
        out.append({"document": doc, "signature": sig, "state": state})
    return out


def all_signed(enr: Enrollment) -> bool:
    return all(row["state"] == "signed" for row in consent_status(enr))


def all_signed_many(enrollment_ids: list[int]) -> dict[int, bool]:
    """``all_signed`` for many enrollments in two queries (rosters): each has signed every current document."""
    ids = list(enrollment_ids)
    if not ids:
        return {}
    current = {d.id for d in current_consent_documents()}
    signed: dict[int, set[int]] = {i: set() for i in ids}
    for enr_id, doc_id in db.session.execute(select(ConsentSignature.enrollment_id, ConsentSignature.document_id)
                                             .where(ConsentSignature.enrollment_id.in_(ids))):
        signed[enr_id].add(doc_id)
    return {i: current <= signed[i] for i in ids}


def sign_consent(enr: Enrollment, document: ConsentDocument, *, signer: User, typed_name: str, now: datetime,
         ctx: RequestContext | None = None) -> ConsentSignature:
    if signer.id != enr.participant_id:
        raise NotFound("No such enrollment.")
    if not enr.is_active:
        raise Conflict("This application is closed.")
    if document.id not in {d.id for d in current_consent_documents()}:
        raise Conflict("A newer version of this document exists; please read and sign that one.")
    typed = " ".join((typed_name or "").split())
    if not typed:
        raise ValidationFailed("Type your full name to sign.", field="typed_name")
    if len(typed) > 200:
        raise ValidationFailed("That name is too long.", field="typed_name")
    if _norm_name(typed) != _norm_name(signer.name):
        raise ValidationFailed(f"Type your full name exactly as on your account ({signer.name}).",
                               field="typed_name")
    existing = db.session.scalar(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id,
                                                                ConsentSignature.document_id == document.id))
    if existing is not None:
        return existing
    sig = ConsentSignature(enrollment_id=enr.id, document_id=document.id, signer_id=signer.id, typed_name=typed,
                           signed_at=now, ip=ctx.ip if ctx else None, document_sha256=document.sha256)
    db.session.add(sig)
    db.session.flush()
    audit.record("consent.signed", actor=signer, object_type="consent_signature", object_id=sig.id, ctx=ctx,
                 details={"document": document.id, "version": document.version, "sha256": document.sha256},
                 now=now)
    refresh_consent_item(enr, now=now)
    return sig


def get_consent_document(doc_id: int) -> ConsentDocument:
    doc = db.session.get(ConsentDocument, doc_id)
    if doc is None:
        raise NotFound("No such document.")
    return doc


def signed_copy(sig: ConsentSignature) -> str:
    """A plain-text signed copy for the participant to keep."""
    doc = sig.document
    intact = text_hash(doc.body) == sig.document_sha256
    return "\n".join([
        f"{doc.title} (version {doc.version})",
        "=" * 72,
        "",
        doc.body,
        "",
        "=" * 72,
        f"Signed electronically by typing the full name: {sig.typed_name}",
        f"Signed at (UTC): {sig.signed_at.strftime('%Y-%m-%d %H:%M:%S')}",
        f"From IP address: {sig.ip or 'unknown'}",
        f"SHA-256 of the document text signed: {sig.document_sha256}",
        f"Text unchanged since signing: {'yes' if intact else 'NO'}",
        "",
    ])
