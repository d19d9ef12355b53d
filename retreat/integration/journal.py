"""The integration journal: a participant's private entries, and what they choose to share.

Who reads what:

    the author          every own entry (list, edit, delete, share, unshare)
    facilitators        only entries the author shared with one of their cohorts, each read audited
                        (``journal.read``); an unshared entry is refused (``journal.denied``, 403)
    everyone else       nothing: providers, finance and admins never read journal text

"Facilitators of a cohort" are the facilitators assigned to one of its sessions; while a cohort
has no session with a facilitator yet, every active facilitator of the practice (the team that
manages all cohorts) is its team. The participant sees those names before and after sharing.

Text is sealed with ``clinical_access.seal_text`` and never written to the audit log. Edits are
optimistic: the form carries the version it was opened at, and a conditional UPDATE refuses a
stale one (``StaleEntry``) so that nothing is overwritten without the author seeing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.clinical.access import seal_text
from retreat.cohorts.models import Cohort, CohortSession, Enrollment
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field
from retreat.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from retreat.extensions import db
from retreat.integration.journal_models import JournalEntry, JournalRealm

MAX_LENGTH = 20_000
PAGE_SIZE = 20

REALM_LABELS = {
    JournalRealm.BODY.value: "Body",
    JournalRealm.MIND.value: "Mind",
    JournalRealm.EMOTIONS.value: "Emotions",
    JournalRealm.RELATIONSHIPS.value: "Relationships",
    JournalRealm.SPIRIT.value: "Spirit",
    JournalRealm.WORK_PLAY.value: "Work and play",
}

# (key, prompt) per realm. Keys are stored with the entry; the wording may be refined later.
PROMPTS: dict[str, list[tuple[str, str]]] = {
    JournalRealm.BODY.value: [
        ("body-sensations", "Where in your body do you notice the experience today? What does it feel like?"),
        ("body-care", "How are you sleeping, eating and moving? What does your body ask for?"),
        ("body-breath", "Take three slow breaths. What changes, if anything?"),
    ],
    JournalRealm.MIND.value: [
        ("mind-insight", "Which insight from the retreat keeps coming back to you?"),
        ("mind-thoughts", "Which familiar thought did you notice this week? How did you meet it?"),
        ("mind-intention", "How does your intention for the retreat read to you now?"),
    ],
    JournalRealm.EMOTIONS.value: [
        ("emotions-parts", "Which part of you showed up today? What did it want you to know?"),
        ("emotions-feel", "Name what you feel right now, without changing it."),
        ("emotions-difficult", "Was anything difficult this week? What helped, even a little?"),
    ],
    JournalRealm.RELATIONSHIPS.value: [
        ("relationships-connection", "With whom did you feel connected this week? What made it possible?"),
        ("relationships-boundary", "Is there a conversation or a boundary you are considering?"),
        ("relationships-share", "What would you like the people close to you to understand about your experience?"),
    ],
    JournalRealm.SPIRIT.value: [
        ("spirit-meaning", "What felt meaningful or sacred during or since the retreat?"),
        ("spirit-gratitude", "Three things you are grateful for today."),
        ("spirit-self", "When did you feel most like yourself (calm, curious, compassionate) this week?"),
    ],
    JournalRealm.WORK_PLAY.value: [
        ("work-rhythm", "How is your work rhythm since you came back? What would you like to change?"),
        ("play-joy", "What brought you joy or play this week?"),
        ("work-step", "One small step you will take this week toward what matters to you."),
    ],
}
PROMPT_TEXT = {key: text for prompts in PROMPTS.values() for key, text in prompts}
PROMPT_REALM = {key: realm for realm, prompts in PROMPTS.items() for key, _text in prompts}


class StaleEntry(Conflict):
    """The entry changed (another tab or device) since the form was opened."""


class JournalDenied(PermissionDenied):
    """A facilitator tried to open an entry that is not shared with them (403)."""


@dataclass
class OpenEntry:
    """An entry with its decrypted text, for its author or (when shared) the cohort's team."""
    entry: JournalEntry
    text: str

    @property
    def realm_label(self) -> str:
        return REALM_LABELS.get(self.entry.realm, self.entry.realm)

    @property
    def prompt(self) -> str:
        return PROMPT_TEXT.get(self.entry.prompt_key or "", "")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _clean(participant: User, realm: str | None, prompt_key: str | None, text: str | None,
           enrollment_id: int | None) -> tuple[str, str | None, str, int | None]:
    errors: dict[str, list[str]] = {}
    realm = (realm or "").strip()
    if realm not in REALM_LABELS:
        errors["realm"] = ["Choose a realm."]
    prompt_key = (prompt_key or "").strip() or None
    if prompt_key is not None and prompt_key not in PROMPT_TEXT:
        errors["prompt_key"] = ["Choose one of the prompts, or none."]
    elif prompt_key is not None and realm in REALM_LABELS and PROMPT_REALM[prompt_key] != realm:
        errors["prompt_key"] = ["That prompt belongs to another realm."]
    text = (text or "").replace("\r\n", "\n").strip()
    if not text:
        errors["text"] = ["Write something before saving."]
    elif len(text) > MAX_LENGTH:
        errors["text"] = [f"Please keep an entry under {MAX_LENGTH:,} characters ({len(text):,} now)."]
    if enrollment_id is not None and enrollment_id not in own_enrollment_ids(participant):
        errors["enrollment_id"] = ["Choose one of your retreats."]
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], errors=errors)
    return realm, prompt_key, text, enrollment_id


def own_enrollments(participant: User) -> list[Enrollment]:
    return list(db.session.scalars(select(Enrollment).where(Enrollment.participant_id == participant.id)
                                   .order_by(Enrollment.id.desc())))


def own_enrollment_ids(participant: User) -> set[int]:
    return set(db.session.scalars(select(Enrollment.id).where(Enrollment.participant_id == participant.id)))


# --------------------------------------------------------------------------------------------
# The author
# --------------------------------------------------------------------------------------------


def own_entry(participant: User, entry_id: int) -> JournalEntry:
    """The author's own entry; anybody else's (or none) is NotFound (ids are not confirmed)."""
    entry = db.session.get(JournalEntry, entry_id)
    if entry is None or participant is None or entry.participant_id != participant.id:
        raise NotFound("We could not find that journal entry.")
    return entry


def open_entry(entry: JournalEntry) -> OpenEntry:
    return OpenEntry(entry, decrypt_field(entry.text_enc) or "")


def list_own(participant: User, *, realm: str | None = None, page: int = 1) -> tuple[list[OpenEntry], int]:
    """One page of the author's entries (newest first) and the number of pages."""
    stmt = select(JournalEntry).where(JournalEntry.participant_id == participant.id)
    count_stmt = select(func.count(JournalEntry.id)).where(JournalEntry.participant_id == participant.id)
    if realm in REALM_LABELS:
        stmt = stmt.where(JournalEntry.realm == realm)
        count_stmt = count_stmt.where(JournalEntry.realm == realm)
    total = db.session.scalar(count_stmt) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = db.session.scalars(stmt.order_by(JournalEntry.created_at.desc(), JournalEntry.id.desc())
                              .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
    return [open_entry(e) for e in rows], pages


def create(participant: User, *, realm: str, prompt_key: str | None, text: str, enrollment_id: int | None,
           now: datetime, ctx: RequestContext | None = None) -> JournalEntry:
    if participant is None or participant.role != Role.PARTICIPANT:
        raise PermissionDenied("Only participants keep a journal.")
    realm, prompt_key, text, enrollment_id = _clean(participant, realm, prompt_key, text, enrollment_id)
    entry = JournalEntry(participant_id=participant.id, enrollment_id=enrollment_id, realm=realm,
                         prompt_key=prompt_key, text_enc=seal_text(text), version=1, created_at=now, updated_at=now)
    db.session.add(entry)
    db.session.flush()
    audit.record("journal.created", actor=participant, object_type="journal_entry", object_id=entry.id,
                 ctx=ctx, now=now)
    return entry


def update_entry(participant: User, entry: JournalEntry, *, expected_version: int | None, realm: str,
                 prompt_key: str | None, text: str, enrollment_id: int | None, now: datetime,
                 ctx: RequestContext | None = None) -> JournalEntry:
    """Change an entry's text, realm or prompt. A stale ``expected_version`` changes nothing."""
    if entry.participant_id != participant.id:
        raise NotFound("We could not find that journal entry.")
    realm, prompt_key, text, enrollment_id = _clean(participant, realm, prompt_key, text, enrollment_id)
    if enrollment_id != entry.enrollment_id and entry.shared_at is not None:
        raise ValidationFailed("This entry is shared with a cohort's facilitators. Stop sharing it before "
                               "moving it to another retreat.", field="enrollment_id")
    result = db.session.execute(
        update(JournalEntry).where(JournalEntry.id == entry.id, JournalEntry.version == expected_version)
        .values(realm=realm, prompt_key=prompt_key, text_enc=seal_text(text), enrollment_id=enrollment_id,
                version=JournalEntry.version + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.expire(entry)
        raise StaleEntry("This entry was changed in another tab or window after you opened it. Nothing was "
                         "overwritten: the saved version and your text are both shown below.")
    db.session.expire(entry)
    audit.record("journal.updated", actor=participant, object_type="journal_entry", object_id=entry.id,
                 details={"version": (expected_version or 0) + 1}, ctx=ctx, now=now)
    return entry


def delete_entry(participant: User, entry: JournalEntry, *, expected_version: int | None, now: datetime,
                 ctx: RequestContext | None = None) -> None:
    """Delete after the author confirmed the version they saw; a changed entry is not deleted."""
    if entry.participant_id != participant.id:
        raise NotFound("We could not find that journal entry.")
    entry_id = entry.id
    result = db.session.execute(delete(JournalEntry).where(JournalEntry.id == entry_id,
                                                           JournalEntry.version == expected_version)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.expire(entry)
        raise StaleEntry("This entry was changed in another tab or window after you asked to delete it, so it "
                         "was not deleted. Look at the latest text and delete again if you still want to.")
    db.session.expunge(entry)
    audit.record("journal.deleted", actor=participant, object_type="journal_entry", object_id=entry_id,
                 ctx=ctx, now=now)


def share(participant: User, entry: JournalEntry, *, enrollment_id: int | None, now: datetime,
          ctx: RequestContext | None = None) -> JournalEntry:
    """Share one entry with the facilitators of one of the author's cohorts."""
    if entry.participant_id != participant.id:
        raise NotFound("We could not find that journal entry.")
    enrollment_id = enrollment_id or entry.enrollment_id
    if enrollment_id is None or enrollment_id not in own_enrollment_ids(participant):
        raise ValidationFailed("Choose the retreat whose facilitators may read this entry.", field="enrollment_id")
    if entry.shared_at is not None and entry.enrollment_id == enrollment_id:
        return entry  # already shared there: a repeat is a no-op
    entry.enrollment_id = enrollment_id
    entry.shared_at = now
    audit.record("journal.shared", actor=participant, object_type="journal_entry", object_id=entry.id,
                 details={"enrollment_id": enrollment_id}, ctx=ctx, now=now)
    return entry


def unshare(participant: User, entry: JournalEntry, *, now: datetime, ctx: RequestContext | None = None) -> JournalEntry:
    if entry.participant_id != participant.id:
        raise NotFound("We could not find that journal entry.")
    if entry.shared_at is None:
        return entry
    entry.shared_at = None
    audit.record("journal.unshared", actor=participant, object_type="journal_entry", object_id=entry.id,
                 details={"enrollment_id": entry.enrollment_id}, ctx=ctx, now=now)
    return entry


# --------------------------------------------------------------------------------------------
# The cohort's facilitators
# --------------------------------------------------------------------------------------------


def cohort_team(cohort_id: int) -> list[User]:
    """The facilitators of a cohort (see the module docstring)."""
    assigned = list(db.session.scalars(
        select(User).join(CohortSession, CohortSession.facilitator_id == User.id)
        .where(CohortSession.cohort_id == cohort_id, User.role == Role.FACILITATOR.value, User.is_active_account.is_(True))
        .distinct().order_by(User.name)))
    if assigned:
        return assigned
    return list(db.session.scalars(select(User).where(User.role == Role.FACILITATOR.value, User.is_active_account.is_(True))
                                   .order_by(User.name)))


def is_cohort_facilitator(actor: User | None, cohort_id: int) -> bool:
    if actor is None or actor.role != Role.FACILITATOR or not actor.is_active:
        return False
    return any(u.id == actor.id for u in cohort_team(cohort_id))


def _refuse(actor: User | None, entry_id: int | None, *, ctx, now, reason: str) -> JournalDenied:
    audit.record("journal.denied", actor=actor, object_type="journal_entry", object_id=entry_id,
                 details={"reason": reason}, ctx=ctx, now=now)
    return JournalDenied("This journal entry is private to the participant.")


def require_team(actor: User | None, cohort: Cohort, *, ctx: RequestContext | None, now: datetime) -> None:
    if not is_cohort_facilitator(actor, cohort.id):
        raise _refuse(actor, None, ctx=ctx, now=now, reason=f"not a facilitator of cohort {cohort.id}")


def shared_overview(actor: User, cohort: Cohort, *, ctx: RequestContext | None, now: datetime) -> list[dict]:
    """Per participant of the cohort: how many entries they shared and when last (no text)."""
    require_team(actor, cohort, ctx=ctx, now=now)
    rows = db.session.execute(
        select(Enrollment, func.count(JournalEntry.id), func.max(JournalEntry.shared_at))
        .join(JournalEntry, JournalEntry.enrollment_id == Enrollment.id)
        .where(Enrollment.cohort_id == cohort.id, JournalEntry.shared_at.is_not(None),
               JournalEntry.participant_id == Enrollment.participant_id)
        .group_by(Enrollment.id).order_by(func.max(JournalEntry.shared_at).desc())).all()
    return [{"enrollment": enr, "count": count, "last_shared_at": last} for enr, count, last in rows]


def _audit_team_read(actor: User, entry: JournalEntry, *, ctx, now) -> None:
    audit.record("journal.read", actor=actor, object_type="journal_entry", object_id=entry.id,
                 details={"participant_id": entry.participant_id, "enrollment_id": entry.enrollment_id,
                          "basis": "shared"}, ctx=ctx, now=now)


def shared_entries(actor: User, enrollment: Enrollment, *, ctx: RequestContext | None,
                   now: datetime) -> list[OpenEntry]:
    """The entries one participant shared with this cohort's team; one audit event per entry read."""
    require_team(actor, enrollment.cohort, ctx=ctx, now=now)
    entries = list(db.session.scalars(select(JournalEntry).where(
        JournalEntry.enrollment_id == enrollment.id, JournalEntry.participant_id == enrollment.participant_id,
        JournalEntry.shared_at.is_not(None)).order_by(JournalEntry.created_at.desc(), JournalEntry.id.desc())))
    out = []
    for entry in entries:
        out.append(open_entry(entry))
        _audit_team_read(actor, entry, ctx=ctx, now=now)
    return out


def read_shared(actor: User | None, entry_id: int, *, ctx: RequestContext | None, now: datetime) -> OpenEntry:
    """One entry for a facilitator: NotFound when it does not exist, JournalDenied (403, audited)
    unless it is shared with a cohort this facilitator belongs to."""
    entry = db.session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound("We could not find that journal entry.")
    if not entry.is_shared:
        raise _refuse(actor, entry.id, ctx=ctx, now=now, reason="not shared")
    enrollment = db.session.get(Enrollment, entry.enrollment_id)
    if enrollment is None or enrollment.participant_id != entry.participant_id or not is_cohort_facilitator(
            actor, enrollment.cohort_id):
        raise _refuse(actor, entry.id, ctx=ctx, now=now, reason="not this facilitator's cohort")
    opened = open_entry(entry)
    _audit_team_read(actor, entry, ctx=ctx, now=now)
    return opened


# --------------------------------------------------------------------------------------------
# Export (the participant's own data)
# --------------------------------------------------------------------------------------------


def export_rows(participant: User) -> list[dict]:
    """Every entry of the author, decrypted, for their own data export (the caller checks the actor)."""
    entries = db.session.scalars(select(JournalEntry).where(JournalEntry.participant_id == participant.id)
                                 .order_by(JournalEntry.created_at, JournalEntry.id))
    out = []
    for e in entries:
        out.append({"id": e.id, "realm": REALM_LABELS.get(e.realm, e.realm), "prompt": PROMPT_TEXT.get(e.prompt_key or ""),
                    "text": decrypt_field(e.text_enc) or "", "created_at": e.created_at.isoformat(),
                    "updated_at": e.updated_at.isoformat(), "enrollment_id": e.enrollment_id,
                    "shared_with_facilitators_since": e.shared_at.isoformat() if e.shared_at else None})
    return out
