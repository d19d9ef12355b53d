"""The readiness gate: each item is named when missing; everything present is ready."""

from __future__ import annotations

from datetime import timedelta

from retreat.clinical.readiness import readiness
from retreat.cohorts import preparation
from retreat.cohorts.models import ChecklistItem, CohortSession, SessionKind
from retreat.extensions import db
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def _session(c):
    s = CohortSession(cohort=c, kind=SessionKind.DOSING, title="Dosing", starts_at=c.starts_at + timedelta(days=1),
                      ends_at=c.starts_at + timedelta(days=1, hours=4))
    db.session.add(s)
    db.session.flush()
    return s


def _prepared(enr, *, skip=()):
    if not db.session.query(ChecklistItem).filter_by(enrollment_id=enr.id).count():
        preparation.create_checklist(enr, enr.cohort, now=NOW)
        db.session.flush()
    for key, kw in (("fasting", {"acknowledged": True}), ("ride_home", {"driver_name": "Sam Rivera", "driver_phone": "+1 303 555 0101"}),
                    ("emergency_contact", {"answer": "Alex (sister) +1 303 555 0102"})):
        if key not in skip:
            preparation.complete(enr, key, now=NOW, **kw)
    db.session.flush()


def test_cleared_and_prepared_is_ready_each_missing_item_is_named(db):
    c = fc.cohort()
    s = _session(c)
    ready, no_ride, bare = fc.cleared(c), fc.cleared(c), fc.cleared(c)
    _prepared(ready)
    _prepared(no_ride, skip=("ride_home",))
    _prepared(bare, skip=("ride_home", "fasting", "emergency_contact"))
    got = readiness(s, [ready, no_ride, bare])
    assert got[ready.id].ready and got[ready.id].summary == "Ready"
    assert got[no_ride.id].missing == ("No ride home arranged",)
    assert got[bare.id].missing == ("Fasting instructions not acknowledged", "No ride home arranged",
                                    "No emergency contact")


def test_without_a_clearance_valid_on_the_day_it_is_not_ready(db):
    c = fc.cohort()
    s = _session(c)
    applicant = fc.applicant(c)
    _prepared(applicant)
    got = readiness(s, [applicant])[applicant.id]
    assert not got.ready and got.missing[0].startswith("Not cleared")


def test_unsigned_current_consents_make_it_not_ready(db):
    c = fc.cohort()
    s = _session(c)
    enr = fc.cleared(c)
    _prepared(enr)
    preparation.publish_consent(kind="kap", title="KAP consent", body="I understand the risks and benefits of this treatment.", actor=None, now=NOW)
    db.session.flush()
    assert readiness(s, [enr])[enr.id].missing == ("Current consents not signed",)


def test_not_ready_for_next_dosing_lists_people_of_the_next_session_with_the_missing_item(db):
    from retreat.clinical.dosing_board import not_ready_for_next_dosing
    from retreat.cohorts import enrollment, seats
    from retreat.timeutil import local_date

    c = fc.cohort()
    first, second = _session(c), _session(c)
    second.starts_at, second.ends_at = c.starts_at + timedelta(days=3), c.starts_at + timedelta(days=3, hours=4)
    people = []
    for name in ("Ada Ready", "Ben Noride"):
        e = fc.applicant(c, now=NOW, name=name)
        seats.take_hold(e, now=NOW, actor=None)
        enrollment.confirm_seat(e, now=NOW, actor=None)
        fc.record_clearance(e, now=NOW)
        people.append(e)
    _prepared(people[0])
    _prepared(people[1], skip=("ride_home",))
    rows = not_ready_for_next_dosing([c.id], local_date(NOW, c.timezone))
    assert [(r.name, r.session_id, r.missing) for r in rows] == [("Ben Noride", first.id, ("no ride home arranged",))]
    after_first = local_date(first.starts_at + timedelta(days=1), c.timezone)
    assert [r.session_id for r in not_ready_for_next_dosing([c.id], after_first)] == [second.id]
    assert not_ready_for_next_dosing([], after_first) == []


def test_emergency_contact_needs_a_name_and_a_phone_number(db):
    import pytest

    from retreat.core.errors import ValidationFailed

    c = fc.cohort()
    enr = fc.cleared(c)
    if not db.session.query(ChecklistItem).filter_by(enrollment_id=enr.id).count():
        preparation.create_checklist(enr, c, now=NOW)
    for bad in ("My sister", "+1 303 555 0100", "Sam 12"):
        with pytest.raises(ValidationFailed, match="name and phone number"):
            preparation.complete(enr, "emergency_contact", answer=bad, now=NOW)
    assert preparation.get_item(enr, "emergency_contact").completed_at is None
    preparation.complete(enr, "emergency_contact", answer="Sam Rivera, +1 303 555 0199", now=NOW)
    assert preparation.get_item(enr, "emergency_contact").completed_at is not None


def test_the_ride_home_is_a_named_driver_with_a_real_phone_number_stored_encrypted_as_e164(db):
    import pytest

    from retreat.core.errors import ValidationFailed

    c = fc.cohort()
    enr = fc.cleared(c)
    if not db.session.query(ChecklistItem).filter_by(enrollment_id=enr.id).count():
        preparation.create_checklist(enr, c, now=NOW)
    bad = [("", "+1 303 555 0199", {"driver_name"}), ("Sam Rivera", "", {"driver_phone"}),
           ("", "", {"driver_name", "driver_phone"}), ("S" * 121, "+1 303 555 0199", {"driver_name"}),
           ("Sam Rivera", "12345", {"driver_phone"}), ("Sam Rivera", "+1 555 555 5555", {"driver_phone"}),
           ("Sam Rivera", "call me maybe", {"driver_phone"}), ("Sam\x00Rivera", "+1 303 555 0199", {"driver_name"})]
    for name, phone, fields in bad:
        with pytest.raises(ValidationFailed) as exc:
            preparation.complete(enr, "ride_home", driver_name=name, driver_phone=phone, now=NOW)
        assert set(exc.value.errors) == fields, (name, phone, exc.value.errors)
    item = preparation.get_item(enr, "ride_home")
    assert item.completed_at is None and item.answer == ""
    # a national number is read in the retreat's country; stored as E.164, shown internationally
    preparation.complete(enr, "ride_home", driver_name="  Sam   Rivera ", driver_phone="(303) 555-0199", now=NOW)
    ride = preparation.ride_home_from(item.answer)
    assert (ride.name, ride.phone, ride.named) == ("Sam Rivera", "+13035550199", True)
    assert preparation.display_answer(item) == "Sam Rivera, +1 303-555-0199"
    assert "Sam Rivera" not in (item.answer_enc or "") and "3035550199" not in (item.answer_enc or "")
    s = _session(c)
    _prepared(enr, skip=("ride_home",))
    got = readiness(s, [enr])[enr.id]
    assert got.ready and got.driver == "Sam Rivera, +1 303-555-0199"


def test_a_legacy_free_text_ride_home_shows_but_is_not_ready_driver_not_named(db):
    c = fc.cohort()
    s = _session(c)
    enr = fc.cleared(c)
    _prepared(enr, skip=("ride_home",))
    item = preparation.get_item(enr, "ride_home")
    item.answer, item.completed_at = "My partner drives me, +1 303 555 0100", NOW  # stored before named drivers
    db.session.flush()
    got = readiness(s, [enr])[enr.id]
    assert not got.ready and got.missing == ("Ride home: driver's name and phone needed",)
    assert got.driver == "" and got.ride_home.legacy == "My partner drives me, +1 303 555 0100"
    assert preparation.display_answer(item) == "My partner drives me, +1 303 555 0100"
    assert [r["display"] for r in preparation.view_items(enr) if r["item"].key == "ride_home"] == [
        "My partner drives me, +1 303 555 0100"]
