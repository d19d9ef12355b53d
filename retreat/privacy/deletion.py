"""A participant's deletion request: what is erased at once, what is retained, who is told.

Erased at once: intakes never submitted (drafts). Retained as medical and financial records:
submitted intakes, clearance decisions, consents, payments and the audit log. The request is a
``DeletionRequest`` row (its reason encrypted: it may be clinical) and an audit event
(``privacy.deletion_requested``, without the reason); active admins get an email without details
that links to the request's admin page (``privacy.deletion_review`` handles it there).

A repeated request while one is open adds to the open one (its reason, if any, is appended with its
time; ``times_requested`` and ``last_requested_at`` move): never a second open request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from retreat import audit
from retreat.accounts.models import Role, User
from retreat.clinical.models import Intake, IntakeStatus
from retreat.cohorts.models import Cohort, CohortStatus, Enrollment, SeatState
from retreat.core import locking, urls
from retreat.core.context import RequestContext
from retreat.core.crypto import decrypt_field, encrypt_field
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.privacy.models import DeletionRequest, DeletionStatus

ACTION = "privacy.deletion_requested"
REASON_MAX = 1000            # one submission's reason
REASON_STORED_MAX = 5000     # all the reasons an open request holds
RESPONSE_DAYS = 30           # the practice answers a request within this many days
ADMIN_PATH = "/admin/deletion-requests/{id}"   # the request's admin page (linked from the email)


@dataclass(frozen=True)
class DeletionOutcome:
    request: DeletionRequest
    erased_drafts: int
    repeated: bool


def bounded_text(value: str | None, *, limit: int, field: str) -> str:
    """``value`` stripped; refused when it holds a NUL character or is longer than ``limit``."""
    value = (value or "").strip()
    if "\x00" in value:
        raise ValidationFailed("This text contains a character that cannot be stored (NUL); please remove it.",
                               field=field)
    if len(value) > limit:
        raise ValidationFailed(f"Please keep this under {limit} characters (it has {len(value)}).", field=field)
    return value


def reasons_of(req: DeletionRequest) -> list[dict]:
    """The decrypted reasons of ``req``: ``[{"at": iso, "text": str}]`` (callers audit the read)."""
    return json.loads(decrypt_field(req.reason_enc)) if req.reason_enc else []


def request_deletion(participant: User, *, reason: str = "", now: datetime,
                     ctx: RequestContext | None = None) -> DeletionOutcome:
    """Record the request (or add to the open one) and erase what the practice need not keep:
    intakes never submitted.

    Submitted intakes, clearance decisions, consents, payments and the audit log are retained as
    medical and financial records. Admins are told (no details) when a request opens and when a
    repeat adds a reason. Bad input raises ``ValidationFailed`` before anything changes.
    """
    reason = bounded_text(reason, limit=REASON_MAX, field="reason")
    locking.lock(User, participant.id)  # serialises this participant's requests: one open at most
    seat = seat_blocking_deletion(participant, now=now)
    if seat is not None:
        raise ValidationFailed(
            f"You hold a seat in {seat.cohort.retreat.title} · {seat.cohort.title}, which has not ended yet. We "
            "cannot delete your data while the seat is yours: withdraw from the cohort first (its refund policy "
            "applies), or ask again once it has ended. Nothing was changed.")
    [req] = locking.lock_where(select(DeletionRequest).where(
        DeletionRequest.participant_id == participant.id, DeletionRequest.status == DeletionStatus.OPEN.value),
        DeletionRequest) or [None]
    repeated = req is not None
    reasons = reasons_of(req) if repeated else []
    if reason and sum(len(r["text"]) for r in reasons) + len(reason) > REASON_STORED_MAX:
        raise ValidationFailed("Your open request already holds as much text as we can keep; the practice "
                               "will read it and reply.", field="reason")
    if reason:
        reasons.append({"at": now.isoformat(), "text": reason})
    if req is None:
        req = DeletionRequest(participant_id=participant.id, status=DeletionStatus.OPEN.value, requested_at=now,
                              last_requested_at=now, times_requested=1)
        db.session.add(req)
    else:
        req.times_requested += 1
        req.last_requested_at = now
    if reason:
        req.reason_enc = encrypt_field(json.dumps(reasons, ensure_ascii=False))
    db.session.flush()
    erased = _erase_drafts(participant, now=now)
    audit.record(ACTION, actor=participant, object_type="user", object_id=participant.id,
                 details={"erased_drafts": erased, "highlight": True, "reason_given": bool(reason),
                          "request_id": req.id, "repeated": repeated}, ctx=ctx, now=now)
    if not repeated or reason:
        _tell_admins(req, now=now)
    return DeletionOutcome(request=req, erased_drafts=erased, repeated=repeated)


def seat_blocking_deletion(participant: User, *, now: datetime) -> Enrollment | None:
    """A seat the participant holds (paid, or being paid) in a cohort that has not ended: while it
    exists, a deletion request is refused (the practice still runs their retreat)."""
    return db.session.scalar(
        select(Enrollment).join(Cohort, Cohort.id == Enrollment.cohort_id)
        .where(Enrollment.participant_id == participant.id,
               Enrollment.seat.in_([SeatState.CONFIRMED.value, SeatState.HELD.value]),
               Cohort.ends_at > now, Cohort.status != CohortStatus.CANCELLED.value)
        .order_by(Cohort.starts_at).limit(1))


def _erase_drafts(participant: User, *, now: datetime) -> int:
    erased = 0
    for intake in locking.lock_where(select(Intake).where(
            Intake.participant_id == participant.id, Intake.status == IntakeStatus.DRAFT.value,
            Intake.submissions == 0), Intake):
        intake.answers_enc = None
        intake.status = IntakeStatus.ERASED.value
        intake.updated_at = now
        erased += 1
    return erased


def _tell_admins(req: DeletionRequest, *, now: datetime) -> None:
    """Every active admin: a link to the request's page, never its reason (it may be clinical)."""
    url = urls.absolute(ADMIN_PATH.format(id=req.id))
    admins = db.session.scalars(select(User).where(User.role == Role.ADMIN.value, User.is_active_account.is_(True)))
    for admin in admins:
        outbox.enqueue(template="clearance_deletion_requested",
                       dedupe_key=f"deletion-request-{req.id}-{req.times_requested}-u{admin.id}", to_user=admin,
                       now=now, context={"recipient_name": admin.name, "url": url, "days": RESPONSE_DAYS})


def latest_request(participant: User) -> DeletionRequest | None:
    """The participant's most recent deletion request (None if never)."""
    return db.session.scalar(select(DeletionRequest).where(DeletionRequest.participant_id == participant.id)
                             .order_by(DeletionRequest.last_requested_at.desc(), DeletionRequest.id.desc()).limit(1))


def deletion_requested_at(participant: User) -> datetime | None:
    """When the participant last asked for deletion (None if never)."""
    req = latest_request(participant)
    return req.last_requested_at if req is not None else None
