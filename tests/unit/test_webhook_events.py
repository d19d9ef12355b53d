"""The events the product emits to webhooks, with what they carry and never carry (no reason for
booking, no pre-screen answers, no clinical decision), written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from retreat.cohorts import enrollment
from retreat.consults import booking as bookings
from retreat.extensions import db
from retreat.messaging import webhooks
from retreat.messaging.webhook_models import WebhookDelivery, WebhookEvent
from tests import factories
from tests import factories_cohorts as fc
from tests import payments_helpers as ph
from tests.unit.test_consult_support import BASE_URL, NOW, book, facilitator_with_hours

DENVER = ZoneInfo("America/Denver")
TUE_10 = datetime(2026, 6, 2, 10, 0, tzinfo=DENVER)


def _subscribe(*events):
    admin = factories.user("admin", password=None)
    ep, _ = webhooks.create_endpoint(url="http://127.0.0.1:9/hooks", events=list(events), actor=admin)
    return ep


def _events(type_=None):
    stmt = select(WebhookEvent).order_by(WebhookEvent.id)
    if type_:
        stmt = stmt.where(WebhookEvent.type == type_)
    return list(db.session.scalars(stmt))


def test_consultation_booked_rescheduled_cancelled_carry_no_reason_or_answers(db):
    _subscribe("consultation.booked", "consultation.rescheduled", "consultation.cancelled")
    fac = facilitator_with_hours(name="Fran Facilitator")
    b = book(TUE_10, reason="Marker-REASON-5521", answers={"suicidality": "yes", "pregnancy": "yes"})
    bookings.reschedule(b.consult, TUE_10 + timedelta(hours=2), base_url=BASE_URL, now=NOW)
    bookings.cancel(b.consult, by="guest", base_url=BASE_URL, now=NOW)
    booked, moved, cancelled = _events()
    assert [booked.type, moved.type, cancelled.type] == ["consultation.booked", "consultation.rescheduled",
                                                         "consultation.cancelled"]
    assert booked.data["consultation_id"] == b.consult.id and booked.data["guest_email"] == "grace@example.com"
    assert booked.data["facilitator_name"] == "Fran Facilitator" and booked.data["start"] == "2026-06-02T16:00:00Z"
    assert moved.data["previous_start"] == "2026-06-02T16:00:00Z" and moved.data["start"] == "2026-06-02T18:00:00Z"
    assert cancelled.data["cancelled_by"] == "guest" and cancelled.data["status"] == "cancelled"
    for ev in (booked, moved, cancelled):
        text = str(webhooks.body_of(ev))
        for secret in ("Marker-REASON-5521", "suicidality", "pregnancy", "reason", "answers", "flagged"):
            assert secret not in text
    assert fac.id == booked.data["facilitator_id"]


def test_nothing_is_written_when_nobody_subscribed(db):
    facilitator_with_hours()
    book(TUE_10)
    assert _events() == [] and db.session.scalars(select(WebhookDelivery)).all() == []


def test_enrollment_status_changes_are_emitted_and_not_cleared_goes_out_as_closed(db):
    _subscribe("enrollment.status_changed")
    c = fc.cohort()
    enr = fc.applicant(c, name="Jo Participant", email="jo@example.com")
    enrollment.submit_intake(enr, now=fc.NOW, actor=None)
    enrollment.request_clearance(enr, now=fc.NOW, actor=None)
    enrollment.mark_not_cleared(enr, now=fc.NOW, actor=None)
    steps = [(e.data["previous_status"], e.data["status"]) for e in _events("enrollment.status_changed")]
    assert steps == [(None, "applied"), ("applied", "intake_submitted"), ("intake_submitted", "clearance_pending"),
                     ("clearance_pending", "closed")]
    last = _events("enrollment.status_changed")[-1].data
    assert last["participant_email"] == "jo@example.com" and last["cohort_id"] == c.id
    assert "not_cleared" not in str(webhooks.body_of(_events()[-1]))


@pytest.mark.usefixtures("stripe_app")
def test_payment_succeeded_is_emitted_once_however_often_stripe_says_so(db, client):
    _subscribe("payment.succeeded")
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    enr = ph.applicant(c)
    pid, pi = ph.start_and_confirm(enr)
    for _ in range(2):
        assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"], "object": "payment_intent"},
                          "evt_dup_wh").status_code == 200
    assert ph.deliver(client, "payment_intent.succeeded", {"id": pi["id"]}).status_code == 200
    db.session.expire_all()
    (ev,) = _events("payment.succeeded")
    assert ev.data["payment_id"] == pid and ev.data["amount_minor"] == 50000 and ev.data["kind"] == "deposit"
    assert ev.data["enrollment_id"] == enr.id and ev.data["currency"] == "USD"
