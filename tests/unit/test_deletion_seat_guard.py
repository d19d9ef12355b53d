"""A deletion request from someone holding a seat (paid or being paid) in a cohort that has not
ended is refused with a clear message and changes nothing; once the cohort has ended, or the seat
is gone, the request is taken."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.cohorts.models import SeatState
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.models import AuditEvent
from retreat.privacy import deletion
from retreat.privacy.models import DeletionRequest
from tests import factories_cohorts as fc

NOW = fc.NOW


def _counts():
    return (_db.session.scalar(select(func.count()).select_from(DeletionRequest)),
            _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == deletion.ACTION)))


@pytest.mark.parametrize("seat", [SeatState.CONFIRMED, SeatState.HELD])
@pytest.mark.parametrize("starts_in", [timedelta(days=30), timedelta(days=-2)])  # upcoming, running
def test_a_seat_in_a_cohort_not_ended_refuses_the_request(app, db, seat, starts_in):
    c = fc.cohort(starts_at=NOW + starts_in)
    enr = fc.bare_enrollment(c)
    enr.seat = seat.value
    db.session.flush()
    fc.new_request()  # the request is a request of its own
    before = _counts()
    with pytest.raises(ValidationFailed) as exc:
        deletion.request_deletion(enr.participant, reason="please", now=NOW)
    assert c.title in exc.value.message and "withdraw from the cohort first" in exc.value.message
    assert _counts() == before


def test_after_the_cohort_ended_the_request_is_taken(app, db):
    c = fc.cohort(starts_at=NOW - timedelta(days=30))
    enr = fc.bare_enrollment(c, now=NOW - timedelta(days=40))
    enr.seat = SeatState.CONFIRMED.value
    db.session.flush()
    fc.new_request()
    outcome = deletion.request_deletion(enr.participant, reason="", now=NOW)
    assert outcome.request.id and _counts() == (1, 1)


def test_an_application_without_a_seat_does_not_block(app, db):
    c = fc.cohort(starts_at=NOW + timedelta(days=30))
    enr = fc.applicant(c)
    assert enr.seat == SeatState.NONE.value
    fc.new_request()
    assert deletion.request_deletion(enr.participant, reason="", now=NOW).request.id


def test_the_page_shows_the_refusal(make_client, db):
    from retreat.timeutil import now_utc
    c = fc.cohort(starts_at=now_utc() + timedelta(days=30))
    participant = make_client("participant", password=None)
    enr = fc.enrollment.apply(c, participant.user, now=now_utc())
    enr.seat = SeatState.CONFIRMED.value
    db.session.flush()
    fc.new_request()
    r = participant.post("/me/data/delete", data={"reason": "x", "confirm": "y"})
    assert r.status_code == 422
    assert "cannot delete your data while the seat is yours" in r.get_data(as_text=True)
    assert _counts()[0] == 0
