"""The rules behind the staff API, tested directly: cursors refuse what they did not make, only a
consult's facilitator moves it, roster rows carry exactly the non-clinical keys."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from retreat.cohorts import roster_feed
from retreat.consults import staff_feed
from retreat.core import cursors
from retreat.core.errors import PermissionDenied, ValidationFailed
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator, book


def test_cursors_round_trip_and_refuse_anything_else():
    at = datetime(2026, 12, 1, 15, tzinfo=UTC)
    assert cursors.decode_time(cursors.encode(at, 7)) == (at, 7)
    assert cursors.decode_id(cursors.encode(9, 9)) == 9
    for bad in ("", "!!", "x" * 200, cursors.encode(at, 7)[:-3], cursors.encode(3, 4)):
        with pytest.raises(ValidationFailed):
            cursors.decode_id(bad) if bad == cursors.encode(3, 4) else cursors.decode_time(bad)


def test_only_the_facilitator_moves_their_consult(db):
    fran = around_the_clock_facilitator()
    oli = around_the_clock_facilitator()
    now = now_utc()
    start = datetime.combine((now + timedelta(days=5)).date(), time(15), UTC)
    consult = book(start, now=now, facilitator_id=fran.id).consult
    with pytest.raises(PermissionDenied):
        staff_feed.staff_reschedule(consult, start + timedelta(days=1), actor=oli, base_url=BASE_URL, now=now)
    assert consult.start_at == start and consult.sequence == 0
    with pytest.raises(PermissionDenied):
        staff_feed.staff_cancel(consult, actor=oli, base_url=BASE_URL, now=now)
    assert consult.status == "booked"
    staff_feed.staff_reschedule(consult, start + timedelta(days=1), actor=fran, base_url=BASE_URL, now=now)
    assert consult.start_at == start + timedelta(days=1) and consult.sequence == 1


def test_roster_rows_have_exactly_the_non_clinical_keys(db):
    c = fc.cohort()
    fc.cleared(c)
    db.session.flush()
    page = roster_feed.roster(c.id)
    assert [tuple(row) for row in page.items] == [roster_feed.ROSTER_KEYS]
    page = roster_feed.enrollments(c.id)
    assert tuple(page.items[0]) == roster_feed.ENROLLMENT_KEYS
    with pytest.raises(ValidationFailed):
        roster_feed.roster(c.id, limit=0)
    assert staff_feed.consultations(factories.user("facilitator", password=None)).items == []
