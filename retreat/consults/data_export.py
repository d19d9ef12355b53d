"""Consultations in a person's data export: the consults in their history (booked signed in, or
confirmed as theirs) with what they wrote, and the bookings made as a guest with their email address
that nobody confirmed yet (listed without the answers: whoever booked may not be them; a number
given there for text reminders is shown masked, "+1 ••• 0142")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from retreat.accounts.models import User
from retreat.accounts.phone import PhoneNumber
from retreat.consults.models import Consultation
from retreat.consults.prescreen import consult_answers, consult_outcome_notes, consult_reason
from retreat.core import personal_data
from retreat.extensions import db
from retreat.messaging import sms_outbox


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _masked(row: PhoneNumber | None) -> str | None:
    return sms_outbox.masked(row.number) if row is not None and row.number_enc else None


def consultations_section(person: User, **_) -> dict:
    mine = db.session.scalars(select(Consultation).options(joinedload(Consultation.facilitator)).where(Consultation.participant_id == person.id)
                              .order_by(Consultation.start_at))
    guest = db.session.scalars(select(Consultation).options(joinedload(Consultation.facilitator)).where(
        Consultation.participant_id.is_(None), func.lower(Consultation.guest_email) == person.email.lower())
        .order_by(Consultation.start_at)).all()
    numbers = {p.consultation_id: p for p in db.session.scalars(select(PhoneNumber).where(
        PhoneNumber.consultation_id.in_([c.id for c in guest] or [-1])))}
    return {
        "consultations": [{
            "start": _iso(c.start_at), "end": _iso(c.end_at), "status": c.status, "facilitator": c.facilitator.name,
            "booked_via": c.booked_via, "name_given": c.guest_name, "email_given": c.guest_email,
            "phone_given": c.guest_phone, "time_zone": c.guest_tz, "heard_from": c.heard_from,
            "reason": consult_reason(c), "answers": consult_answers(c),
            "joined_history_at": _iso(c.owner_confirmed_at), "cancelled_at": _iso(c.cancelled_at),
            "recommended_cohort": c.recommended_cohort, "facilitator_notes": consult_outcome_notes(c)}
            for c in mine],
        "guest_bookings_with_your_email": [{
            "start": _iso(c.start_at), "status": c.status, "facilitator": c.facilitator.name,
            "booked_via": c.booked_via, "booked_at": _iso(c.created_at),
            "text_reminders_to": _masked(numbers.get(c.id))} for c in guest],
    }


personal_data.register_section("consultations", consultations_section, title="Consultations",
                               covers=("consultations",), order=20)
