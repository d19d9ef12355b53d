"""Carrying out a deletion request: what the practice must keep (and why), what it erases or
anonymises, closing the account, and telling the person.

``plan(person)`` is what the admin reads before acting: per kind of record, how many rows, and
either why it is kept or what happens to it. ``carry_out`` does it in one transaction, under the
person's row lock: the person is told first (an outbox email to the address they had, no clinical
content), then every erasing step runs, the account is closed (no sign-in, every session revoked,
the remember-me and copied cookies dead) and the request marked done, audited with the counts.
Carrying it out again does nothing more; it is refused while the person holds a seat in a cohort
that has not ended. Declining (``decline``) needs a reason and tells the person too.

Money never moves: payments, refunds, the ledger and installments keep their amounts and rows, so
finance totals are the same before and after; only names and addresses shown beside them change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from retreat import audit
from retreat.accounts.calendar_feeds import CalendarFeed
from retreat.accounts.models import ApiToken, User
from retreat.accounts.phone import PhoneNumber
from retreat.accounts.recovery_codes import TotpRecoveryCode
from retreat.accounts.sessions import EndReason, UserSession, end_all
from retreat.clinical.dosing_models import DosingRecord
from retreat.clinical.models import ClearanceRequest, Intake, SafetyAlert
from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.cohorts.models import ChecklistItem, ConsentSignature, Enrollment, RosterNote
from retreat.consults.models import Consultation
from retreat.core import locking
from retreat.core.context import RequestContext
from retreat.core.crypto import encrypt_field
from retreat.core.errors import Conflict, ValidationFailed
from retreat.extensions import db
from retreat.integration.followup_models import CheckInResponse, FollowUp, FollowUpStatus
from retreat.integration.journal_models import JournalEntry
from retreat.integration.models import CircleRsvp
from retreat.messaging import outbox
from retreat.messaging.models import OutboxMessage, OutboxStatus
from retreat.messaging.sms_models import SmsMessage
from retreat.payments.models import Installment, LedgerEntry, Payment, Refund
from retreat.privacy import deletion_review
from retreat.privacy.deletion import seat_blocking_deletion
from retreat.privacy.models import DeletionRequest, DeletionStatus

DONE_TEMPLATE = "privacy_deletion_done"
DECLINED_TEMPLATE = "privacy_deletion_declined"
ANON_NAME = "Deleted participant"
ANON_DOMAIN = "deleted.invalid"  # RFC 2606: never delivered

FINANCIAL_WHY = ("Tax and accounting law require the practice to keep them (typically seven years). Amounts, dates "
                 "and receipt references stay; the name beside them is anonymised.")
CLINICAL_WHY = ("Held under the partner provider's rules and retention: the provider organisation ({orgs}) is their "
                "custodian, not the practice. They stay encrypted and are read only through the audited clinical path.")
AUDIT_WHY = "The audit log is append-only evidence of who did what (including this deletion); it is never edited."
REQUEST_WHY = "The deletion request itself: the record that the practice answered it."


def anonymous_email(user_id: int) -> str:
    return f"deleted-{user_id}@{ANON_DOMAIN}"


@dataclass(frozen=True)
class Item:
    what: str
    count: int
    why: str  # kept: why; erased: what happens to it


def _count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def _enrollment_ids(person: User):
    return select(Enrollment.id).where(Enrollment.participant_id == person.id)


def _of(model, person: User):
    return select(model.id).where(model.enrollment_id.in_(_enrollment_ids(person)))


def _their_consults(person: User):
    return select(Consultation.id).where(or_(Consultation.participant_id == person.id,
                                             func.lower(Consultation.guest_email) == person.email.lower()))


def _their_messages(person: User):
    return select(OutboxMessage.id).where(or_(OutboxMessage.recipient_user_id == person.id,
                                              func.lower(OutboxMessage.recipient_email) == person.email.lower()))


ERASED_NUMBER = "erased"  # a text's number and its hash after erasure: matches no phone


def _their_numbers(person: User, consults: list[int]):
    """Their phone numbers: the account's, and those given on the manage page of their consults."""
    return select(PhoneNumber.id).where(or_(PhoneNumber.user_id == person.id,
                                            PhoneNumber.consultation_id.in_(consults or [-1])))


def _their_texts(person: User, consults: list[int]):
    """Text messages to them: the account's, and those of their consults (a guest's number, its codes)."""
    groups = [f"{prefix}{i}" for i in consults for prefix in ("consult:", "phone:consult:")]
    return select(SmsMessage.id).where(or_(SmsMessage.recipient_user_id == person.id,
                                           SmsMessage.group_key.in_(groups or ["-"])))


@dataclass(frozen=True)
class Group:
    title: str
    why: str
    items: list[Item]


def plan(person: User) -> dict[str, list]:
    """What must be kept and why, and what will be erased or anonymised, with the counts."""
    orgs = sorted({r.organization.name for r in db.session.scalars(
        select(ClearanceRequest).where(ClearanceRequest.enrollment_id.in_(_enrollment_ids(person))))}) \
        or ["none referred yet"]
    clinical_why = CLINICAL_WHY.format(orgs=", ".join(orgs))
    consults = list(db.session.scalars(_their_consults(person)))
    kept = [
        Group("Financial records", FINANCIAL_WHY, [
            Item("Payments", _count(_of(Payment, person)), ""),
            Item("Refunds", _count(_of(Refund, person)), ""),
            Item("Ledger entries", _count(_of(LedgerEntry, person)), ""),
            Item("Installment plans (invoices)", _count(_of(Installment, person)), "")]),
        Group("Clinical records", clinical_why, [
            Item("Submitted medical intakes and screening", _count(
                select(Intake.id).where(Intake.participant_id == person.id, Intake.submissions > 0)), ""),
            Item("Clearance requests, decisions and messages", _count(_of(ClearanceRequest, person)), ""),
            Item("Signed consents", _count(_of(ConsentSignature, person)), ""),
            Item("Safety alerts", _count(_of(SafetyAlert, person)), ""),
            Item("Dosing-day records", _count(_of(DosingRecord, person)), ""),
            Item("Questionnaire scores (PHQ-9, GAD-7)", _count(_of(OutcomeMeasure, person)), ""),
            Item("Check-in answers (safety follow-up)", _count(_of(CheckInResponse, person)), "")]),
        Group("Audit log", AUDIT_WHY, []),
        Group("This deletion request", REQUEST_WHY, []),
    ]
    erased = [
        Item("Profile", 1, f"Name, email and phone anonymised (“{ANON_NAME}”, an address that is never delivered); "
                           "password and two-factor removed; the account is closed"),
        Item("Sign-in sessions", _count(select(UserSession.id).where(UserSession.user_id == person.id,
                                                                     UserSession.revoked_at.is_(None))),
             "Revoked: every device is signed out, copied cookies stop working"),
        Item("Tokens, calendar links and recovery codes", _count(select(ApiToken.id).where(ApiToken.user_id == person.id))
             + _count(select(CalendarFeed.id).where(CalendarFeed.user_id == person.id))
             + _count(select(TotpRecoveryCode.id).where(TotpRecoveryCode.user_id == person.id)), "Deleted"),
        Item("Journal entries", _count(select(JournalEntry.id).where(JournalEntry.participant_id == person.id)),
             "Deleted"),
        Item("Preparation answers", _count(_of(ChecklistItem, person).where(ChecklistItem.answer_enc.is_not(None))),
             "Erased (dietary needs, emergency contact, ride home...); the task list stays"),
        Item("Applications' motivation and lodging", _count(_enrollment_ids(person)), "Erased"),
        Item("Team notes", _count(_of(RosterNote, person)), "Deleted"),
        Item("Consultations", _count(_their_consults(person)),
             "Reason, answers and the facilitator's notes erased; name, email and phone anonymised; links revoked"),
        Item("Phone numbers for text reminders", _count(_their_numbers(person, consults)), "Deleted"),
        Item("Text messages", _count(_their_texts(person, consults)),
             "Content and number erased; unsent ones cancelled"),
        Item("Circle replies", _count(_of(CircleRsvp, person)), "Notes erased"),
        Item("Messages", _count(_their_messages(person)),
             "Content erased and address anonymised; unsent ones cancelled (except the email telling them)"),
        Item("Scheduled check-ins", _count(_of(FollowUp, person).where(
            FollowUp.status == FollowUpStatus.SCHEDULED.value)), "Cancelled"),
    ]
    return {"kept": kept, "erased": erased}


def carry_out(req: DeletionRequest, *, actor: User, note: str | None, now: datetime,
              ctx: RequestContext | None = None) -> DeletionRequest:
    """Erase, close the account, tell the person, mark the request done; all audited. Repeating it
    does nothing more; declined requests and a seat in a cohort not ended are refused."""
    deletion_review.require_admin(actor)
    note = deletion_review.bounded_note(note)
    person = locking.lock(User, req.participant_id)
    req = locking.lock(DeletionRequest, req.id)
    if req.status == DeletionStatus.DONE.value:
        return req  # carried out already: nothing more
    if req.status != DeletionStatus.OPEN.value:
        raise Conflict(f"This request was already marked {req.status}.")
    seat = seat_blocking_deletion(person, now=now)
    if seat is not None:
        raise ValidationFailed(
            f"{person.name} holds a seat in {seat.cohort.retreat.title} · {seat.cohort.title}, which has not ended. "
            "Their data cannot be deleted while the practice still runs their retreat: cancel the seat first "
            "(its refund policy applies) or wait until the cohort has ended. Nothing was changed.")
    told = outbox.enqueue(template=DONE_TEMPLATE, dedupe_key=f"deletion-done-{req.id}", to_email=person.email,
                          to_name=person.name, tz=person.tz, now=now, context={"recipient_name": person.name,
                                                                               "note": note or ""})
    counts = _erase(person, keep_message_id=told.id if told is not None else None, now=now)
    req.status = DeletionStatus.DONE.value
    req.handled_by_id = actor.id
    req.handled_at = now
    req.note = note or None
    audit.record(deletion_review.CLOSE_ACTIONS[DeletionStatus.DONE], actor=actor, object_type="deletion_request",
                 object_id=req.id, details={"participant_id": person.id, "note_given": bool(note), "counts": counts,
                                            "account_closed": True, "highlight": True}, ctx=ctx, now=now)
    return req


def decline(req: DeletionRequest, *, actor: User, note: str | None, now: datetime,
            ctx: RequestContext | None = None) -> DeletionRequest:
    """Decline with a reason (required); the person is told by email, with the reason."""
    was_open = req.status == DeletionStatus.OPEN.value
    req = deletion_review.close(req, DeletionStatus.DECLINED, actor=actor, note=note, now=now, ctx=ctx)
    if was_open:
        person = req.participant
        outbox.enqueue(template=DECLINED_TEMPLATE, dedupe_key=f"deletion-declined-{req.id}", to_user=person, now=now,
                       context={"recipient_name": person.name, "note": req.note or ""})
    return req


def _erase(person: User, *, keep_message_id: int | None, now: datetime) -> dict[str, int]:
    enrollments = _enrollment_ids(person)
    consults = list(db.session.scalars(_their_consults(person)))
    messages = [i for i in db.session.scalars(_their_messages(person)) if i != keep_message_id]
    anon_email = anonymous_email(person.id)
    counts = {
        "sessions": end_all(person, EndReason.DEACTIVATED, now=now),
        "tokens": _rows(delete(ApiToken).where(ApiToken.user_id == person.id))
        + _rows(delete(CalendarFeed).where(CalendarFeed.user_id == person.id))
        + _rows(delete(TotpRecoveryCode).where(TotpRecoveryCode.user_id == person.id)),
        "journal_entries": _rows(delete(JournalEntry).where(JournalEntry.participant_id == person.id)),
        "preparation_answers": _rows(update(ChecklistItem).where(
            ChecklistItem.enrollment_id.in_(enrollments), ChecklistItem.answer_enc.is_not(None)).values(answer_enc=None)),
        "applications": _rows(update(Enrollment).where(Enrollment.participant_id == person.id)
                              .values(motivation_enc=None, lodging="")),
        "team_notes": _rows(delete(RosterNote).where(RosterNote.enrollment_id.in_(enrollments))),
        "consultations": _rows(update(Consultation).where(Consultation.id.in_(consults or [-1])).values(
            reason_encrypted=None, answers_encrypted=None, outcome_notes_encrypted=None, guest_name=ANON_NAME,
            guest_email=anon_email, guest_phone=None, heard_from=None, manage_token_hash=None,
            manage_token_expires_at=None, claim_token_hash=None)),
        "phone_numbers": _rows(delete(PhoneNumber).where(PhoneNumber.id.in_(_their_numbers(person, consults)))),
        "texts_cancelled": _rows(update(SmsMessage).where(
            SmsMessage.id.in_(_their_texts(person, consults)),
            SmsMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.FAILED.value]))
            .values(status=OutboxStatus.CANCELLED.value, cancelled_at=now)),
        "texts": _rows(update(SmsMessage).where(SmsMessage.id.in_(_their_texts(person, consults))).values(
            context={}, private_enc=None, to_number_enc=encrypt_field(ERASED_NUMBER),
            to_hash=ERASED_NUMBER, last_error=None)),
        "circle_replies": _rows(update(CircleRsvp).where(CircleRsvp.enrollment_id.in_(enrollments)).values(note="")),
        "messages": _rows(update(OutboxMessage).where(OutboxMessage.id.in_(messages or [-1])).values(
            context={}, private_enc=None, ics=None, sms_spec=None, recipient_email=anon_email, recipient_name=None)),
        "messages_cancelled": _rows(update(OutboxMessage).where(
            OutboxMessage.id.in_(messages or [-1]),
            OutboxMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.FAILED.value]))
            .values(status=OutboxStatus.CANCELLED.value, cancelled_at=now)),
        "check_ins_cancelled": _rows(update(FollowUp).where(
            FollowUp.enrollment_id.in_(enrollments), FollowUp.status == FollowUpStatus.SCHEDULED.value)
            .values(status=FollowUpStatus.CANCELLED.value, cancelled_reason="account deleted")),
    }
    db.session.flush()
    db.session.expire_all()  # the bulk statements above changed rows the session may hold
    person.name = ANON_NAME
    person.email = anon_email
    person.phone = None
    person.password_hash = None
    person.totp_secret = None
    person.totp_enabled_at = None
    person.marketing_opt_out = True
    person.is_active_account = False
    db.session.flush()
    return counts


def _rows(stmt) -> int:
    return db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount or 0
