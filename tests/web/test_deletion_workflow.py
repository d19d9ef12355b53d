"""Carrying out a deletion request: the admin's page says what is kept and why and what is erased;
carrying it out erases and anonymises, closes the account (its cookie is dead), tells the person by
email at the address they had (no clinical content), is audited, and does nothing more when
repeated; money is untouched (finance totals unchanged). Refused while a seat is held; declining
tells the person too."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from sqlalchemy import func, select

from retreat.cohorts.models import ChecklistItem, SeatState
from retreat.consults.models import Consultation
from retreat.core.crypto import encrypt_field
from retreat.finance import reports as finance_reports
from retreat.integration.journal_models import JournalEntry
from retreat.messaging import outbox
from retreat.models import AuditEvent, LedgerEntry, OutboxMessage, Payment, User
from retreat.privacy import deletion, erasure
from retreat.privacy.models import DeletionRequest
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests import finance_helpers as fh
from tests.conftest import login_as
from tests.factories_clearance import MARKER


def _count(db, model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _finance_totals():
    flt = finance_reports.make_filter(tz="UTC")
    return {cur: (dict(f.amounts), f.entries, f.collected) for cur, f in finance_reports.totals(flt).items()}


def _person_with_data(db, *, cohort_starts_in=timedelta(days=-60)):
    """A participant of a cohort (ended by default) who paid, wrote, booked and was emailed."""
    now = now_utc()
    c = fh.cohort(starts_at=now + cohort_starts_in)
    enr = fh.seated(c, at=now - timedelta(days=90))
    person = enr.participant
    db.session.add(ChecklistItem(enrollment_id=enr.id, key="diet", due_at=now - timedelta(days=70),
                                 answer_enc=encrypt_field(f"{MARKER} vegan"), completed_at=now - timedelta(days=70)))
    db.session.add(JournalEntry(participant_id=person.id, enrollment_id=enr.id, realm="emotions",
                                text_enc=encrypt_field(f"{MARKER} journal")))
    fac = factories.user("facilitator", password=None)
    start = now - timedelta(days=100)
    db.session.add(Consultation(
        calendar_uid=secrets.token_hex(8), facilitator_id=fac.id, participant_id=person.id, start_at=start,
        end_at=start + timedelta(minutes=30), blocked_start=start, blocked_end=start + timedelta(minutes=30),
        status="completed", guest_name=person.name, guest_email=person.email, guest_phone="+1 303 555 0199",
        reason_encrypted=encrypt_field(f"{MARKER} reason"), outcome_notes_encrypted=encrypt_field("notes")))
    outbox.enqueue(template="password_changed", dedupe_key=f"pw-{person.id}", to_user=person, now=now,
                   context={"name": person.name})
    db.session.flush()
    fc.new_request()
    deletion.request_deletion(person, reason=f"{MARKER} please delete", now=now)
    db.session.commit()
    return enr, person


def _request(db, person) -> DeletionRequest:
    db.session.expire_all()
    return db.session.scalar(select(DeletionRequest).where(DeletionRequest.participant_id == person.id))


def test_the_admins_page_lists_what_is_kept_with_why_and_what_is_erased(make_client, db):
    admin = make_client("admin", password=None)
    _, person = _person_with_data(db)
    page = admin.get(f"/admin/deletion-requests/{_request(db, person).id}").get_data(as_text=True)
    assert "What must be kept, and why" in page and "What will be erased or anonymised" in page
    for kept in ("Financial records", "Payments", "Refunds", "Ledger entries", "Tax and accounting law",
                 "Clinical records", "partner provider",
                 "Audit log", "append-only"):
        assert kept in page, kept
    for erased in ("Profile", "Journal entries", "Preparation answers", "Consultations", "Messages",
                   "Sign-in sessions", "Tokens, calendar links and recovery codes"):
        assert erased in page, erased
    assert "Carry out the deletion" in page and "disabled" not in page.split("Carry out the deletion")[0][-200:]


def test_carrying_it_out_erases_closes_tells_and_audits_and_money_stays(app, make_client, db):
    admin = make_client("admin", password=None)
    enr, person = _person_with_data(db)
    old_email, person_id = person.email, person.id
    cookie = app.test_client()
    login_as(app, cookie, person, remember=True)
    db.session.commit()
    assert cookie.get("/me/data").status_code == 200
    money_before = (_finance_totals(), _count(db, Payment), _count(db, LedgerEntry),
                    db.session.scalar(select(func.sum(LedgerEntry.amount_minor))))
    req = _request(db, person)

    r = admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "All done, take care."})
    assert r.status_code == 302
    assert "account closed" in admin.get(r.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    person = db.session.get(User, person_id)
    assert person.email == erasure.anonymous_email(person_id) and person.name == erasure.ANON_NAME
    assert person.phone is None and person.password_hash is None and not person.is_active_account
    assert _count(db, JournalEntry, JournalEntry.participant_id == person_id) == 0
    assert db.session.scalar(select(ChecklistItem.answer_enc).where(ChecklistItem.enrollment_id == enr.id)) is None
    consult = db.session.scalar(select(Consultation).where(Consultation.participant_id == person_id))
    assert (consult.reason_encrypted, consult.outcome_notes_encrypted, consult.guest_phone) == (None, None, None)
    assert consult.guest_email == person.email
    # Money is untouched: same rows, same sums, same finance totals.
    assert (_finance_totals(), _count(db, Payment), _count(db, LedgerEntry),
            db.session.scalar(select(func.sum(LedgerEntry.amount_minor)))) == money_before
    # Told once, at the address they had, with the admin's note and nothing clinical.
    [told] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == erasure.DONE_TEMPLATE))
    assert told.recipient_email == old_email and told.status == "pending"
    assert told.context["note"] == "All done, take care." and MARKER not in json.dumps(told.context)
    # Older messages: content erased, address anonymised, nothing more sent to them.
    [older] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "password_changed"))
    assert older.context == {} and older.recipient_email == person.email and older.status == "cancelled"
    # Audited with the counts (no content).
    [ev] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "privacy.deletion_done"))
    assert ev.actor_id == admin.user.id and ev.details["counts"]["journal_entries"] == 1
    assert ev.details["account_closed"] is True and MARKER not in json.dumps(ev.details)
    # The copied cookie (remember-me too) is dead, and the old password cannot sign in.
    r = cookie.get("/me/data")
    assert r.status_code == 302 and "/account/login" in r.headers["Location"]
    r = app.test_client().post("/account/login", data={"email": old_email, "password": factories.PASSWORD})
    assert r.status_code != 302

    # Carrying it out again does nothing more.
    again = admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "again"})
    assert again.status_code == 302
    assert _count(db, AuditEvent, AuditEvent.action == "privacy.deletion_done") == 1
    assert _count(db, OutboxMessage, OutboxMessage.template == erasure.DONE_TEMPLATE) == 1
    assert _request(db, person).note == "All done, take care."


def test_a_seat_in_a_cohort_not_ended_refuses_it_and_changes_nothing(make_client, db):
    admin = make_client("admin", password=None)
    enr, person = _person_with_data(db)
    req = _request(db, person)
    # After the request, they took a seat in an upcoming cohort.
    upcoming = fc.cohort(starts_at=now_utc() + timedelta(days=20))
    seat = fc.bare_enrollment(upcoming)
    seat.participant_id = person.id
    seat.seat = SeatState.CONFIRMED.value
    db.session.commit()
    page = admin.get(f"/admin/deletion-requests/{req.id}").get_data(as_text=True)
    assert "holds a seat in" in page and upcoming.title in page
    r = admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "x"})
    assert r.status_code == 409 and "cancel the seat first" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, person.id).is_active_account and _request(db, person).status == "open"
    assert _count(db, JournalEntry, JournalEntry.participant_id == person.id) == 1
    assert _count(db, OutboxMessage, OutboxMessage.template == erasure.DONE_TEMPLATE) == 0
    assert _count(db, AuditEvent, AuditEvent.action == "privacy.deletion_done") == 0


def test_declining_needs_a_reason_and_tells_the_person(make_client, db):
    admin = make_client("admin", password=None)
    _, person = _person_with_data(db)
    req = _request(db, person)
    assert admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": ""}).status_code == 422
    assert _count(db, OutboxMessage, OutboxMessage.template == erasure.DECLINED_TEMPLATE) == 0
    r = admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": "Your retreat is next week."})
    assert r.status_code == 302
    [told] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == erasure.DECLINED_TEMPLATE))
    assert told.recipient_email == person.email and told.context["note"] == "Your retreat is next week."
    assert db.session.get(User, person.id).is_active_account
    # Declining again changes nothing and tells nobody twice; carrying a declined one out is refused.
    admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": "Your retreat is next week."})
    assert _count(db, OutboxMessage, OutboxMessage.template == erasure.DECLINED_TEMPLATE) == 1
    assert admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": ""}).status_code == 409


def test_only_admins_carry_it_out(make_client, db):
    _, person = _person_with_data(db)
    req = _request(db, person)
    for role in ("participant", "facilitator", "finance"):
        r = make_client(role, password=None).post(f"/admin/deletion-requests/{req.id}/done", data={"note": ""})
        assert r.status_code in (403, 404)
    assert _request(db, person).status == "open"


def test_the_emails_render(app, db):
    from retreat.messaging.render import render_email
    with app.test_request_context():
        done = render_email(erasure.DONE_TEMPLATE, {"recipient_name": "Ann", "note": "Bye"})
        declined = render_email(erasure.DECLINED_TEMPLATE, {"recipient_name": "Ann", "note": "Seat booked"})
    assert "deleted" in done.subject and "Bye" in done.text and "closed your account" in done.html
    assert "Seat booked" in declined.text and declined.subject
