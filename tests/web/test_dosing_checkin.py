"""Item 17: the check-in of a dosing session shows each person's clearance on that session's date
and refuses to mark present anyone without a valid one (the clearance gate's rule)."""

from datetime import timedelta

from sqlalchemy import func, select

from retreat.cohorts import catalog, enrollment, seats
from retreat.cohorts.models import Attendance
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.unit.test_dosing_readiness import _prepared


def _confirmed(c, name, now):
    enr = fc.applicant(c, now=now, name=name)
    seats.take_hold(enr, now=now, actor=None)
    enrollment.confirm_seat(enr, now=now, actor=None)  # the cohort takes the deposit before clearance
    return enr


def _marks(db, session):
    return db.session.scalar(select(func.count()).select_from(Attendance).where(
        Attendance.session_id == session.id, Attendance.status != "absent"))


def test_dosing_checkin_shows_clearance_and_refuses_present_without_a_valid_one(app, db):
    now = now_utc()
    c = fc.cohort(starts_at=now + timedelta(days=30))
    facilitator = factories.user("facilitator", password=None)
    casey = _confirmed(c, "Casey Cleared", now)
    fc.record_clearance(casey, now=now)
    _prepared(casey)
    uma = _confirmed(c, "Uma Uncleared", now)
    lee = _confirmed(c, "Lee Lapsed", now)
    fc.record_clearance(lee, now=now, valid_until=c.starts_at - timedelta(days=3))
    dosing = catalog.add_session(c, kind="dosing", title="Dosing day 1", starts_at=c.starts_at + timedelta(days=1),
                                 ends_at=c.starts_at + timedelta(days=1, hours=4), location="Main room",
                                 video_url="", facilitator_id=None, actor=facilitator, now=now)
    db.session.commit()
    f = fc.client_for(app, facilitator)
    page = f.get(f"/facilitator/sessions/{dosing.id}/checkin").get_data(as_text=True)
    assert "Cleared until" in page and "Not cleared" in page and "Clearance lapsed (valid until" in page
    assert page.count(" disabled aria-disabled") == 4  # present and late, for Uma and Lee

    r = f.post(f"/facilitator/sessions/{dosing.id}/checkin/{uma.id}", data={"status": "present"},
               follow_redirects=True)
    assert "Uma Uncleared is not ready for this dosing session: medical clearance" in r.get_data(as_text=True)
    r = f.post(f"/facilitator/sessions/{dosing.id}/checkin/{lee.id}", data={"status": "late"}, follow_redirects=True)
    assert "Lee Lapsed is not ready for this dosing session: medical clearance" in r.get_data(as_text=True)
    assert _marks(db, dosing) == 0

    r = f.post(f"/facilitator/sessions/{dosing.id}/checkin/{casey.id}", data={"status": "present"},
               follow_redirects=True)
    assert "<strong>1</strong> of 3 checked in" in r.get_data(as_text=True)
    f.post(f"/facilitator/sessions/{dosing.id}/checkin/{uma.id}", data={"status": "absent"})
    assert _marks(db, dosing) == 1  # absent can always be recorded


def test_other_sessions_need_no_clearance(app, db):
    now = now_utc()
    c = fc.cohort(starts_at=now + timedelta(days=30))
    facilitator = factories.user("facilitator", password=None)
    uma = _confirmed(c, "Uma Uncleared", now)
    ifs = catalog.add_session(c, kind="ifs", title="IFS group", starts_at=c.starts_at,
                              ends_at=c.starts_at + timedelta(hours=2), location="Main room", video_url="",
                              facilitator_id=None, actor=facilitator, now=now)
    db.session.commit()
    f = fc.client_for(app, facilitator)
    assert "Not cleared" not in f.get(f"/facilitator/sessions/{ifs.id}/checkin").get_data(as_text=True)
    r = f.post(f"/facilitator/sessions/{ifs.id}/checkin/{uma.id}", data={"status": "present"}, follow_redirects=True)
    assert "<strong>1</strong> of 1 checked in" in r.get_data(as_text=True)


def test_dosing_checkin_names_the_missing_item_and_shows_status_and_coverage_only(app, db):
    from retreat.clinical.dosing_models import DosingRecord
    from retreat.core.crypto import encrypt_field

    now = now_utc()
    c = fc.cohort(starts_at=now + timedelta(days=5))
    facilitator = factories.user("facilitator", password=None)
    nora = _confirmed(c, "Nora Noride", now)
    fc.record_clearance(nora, now=now)
    _prepared(nora, skip=("ride_home",))
    dosing = catalog.add_session(c, kind="dosing", title="Dosing day 1", starts_at=c.starts_at + timedelta(days=1),
                                 ends_at=c.starts_at + timedelta(days=1, hours=4), location="Main room",
                                 video_url="", facilitator_id=None, actor=facilitator, now=now)
    db.session.commit()
    f = fc.client_for(app, facilitator)
    page = f.get(f"/facilitator/sessions/{dosing.id}/checkin").get_data(as_text=True)
    assert "Not ready: no ride home arranged" in page and "no validly licensed clinician assigned" in page
    overview = f.get(f"/facilitator/cohorts/{c.id}").get_data(as_text=True)
    assert "Dosing day 1" in overview and "has no validly licensed clinician assigned yet" in overview
    r = f.post(f"/facilitator/sessions/{dosing.id}/checkin/{nora.id}", data={"status": "present"},
               follow_redirects=True)
    assert "Nora Noride is not ready for this dosing session: no ride home arranged" in r.get_data(as_text=True)
    assert _marks(db, dosing) == 0
    # The provider checked her in by override and shared a note: the team sees status and that note only.
    db.session.add(DosingRecord(session_id=dosing.id, enrollment_id=nora.id, state="in_session", version=3,
                                overridden=True, shared_note_enc=encrypt_field("Resting quietly, all well")))
    db.session.commit()
    page = f.get(f"/facilitator/sessions/{dosing.id}/checkin").get_data(as_text=True)
    assert "In session" in page and "Resting quietly, all well" in page
    f.post(f"/facilitator/sessions/{dosing.id}/checkin/{nora.id}", data={"status": "present"})
    assert _marks(db, dosing) == 1
