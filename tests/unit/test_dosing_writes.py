"""Writes on a dosing record: the day's order, idempotent replays, stale versions, encryption."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from retreat.clinical import dosing, staffing
from retreat.clinical.dosing_models import DosingEntry, DosingState
from retreat.core import signals
from retreat.core.crypto import decrypt_field
from retreat.core.errors import ValidationFailed
from retreat.extensions import db
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW
from tests.unit.test_dosing_readiness import _prepared
from tests.unit.test_dosing_staffing import _clinician, _setup

VITALS = {"systolic": "124", "diastolic": "80", "heart_rate": "70", "spo2": "98"}
DOSE = {"medicine": "Ketamine troche", "route": "sublingual", "amount": "200", "unit": "mg"}
CRITERIA = dict.fromkeys(dosing.DISCHARGE_CRITERIA, "yes")


@pytest.fixture
def day(db):
    org, lead, s = _setup()
    md = _clinician(org)
    staffing.assign(s, md, actor=lead)
    enr = fc.cleared(s.cohort)
    _prepared(enr)
    rec = dosing.record_for(s, enr)
    return rec, md


def test_check_in_refuses_anyone_not_ready_unless_an_assigned_clinician_overrides(db):
    org, lead, s = _setup()
    md = _clinician(org)
    staffing.assign(s, md, actor=lead)
    enr = fc.cleared(s.cohort)
    _prepared(enr, skip=("ride_home",))
    rec = dosing.record_for(s, enr)
    with pytest.raises(ValidationFailed, match="No ride home arranged"):
        w(rec, "check_in", md=md)
    with pytest.raises(ValidationFailed, match="Only a clinician assigned"):
        w(rec, "check_in", {"override_reason": "driver confirmed by phone"}, md=_clinician(org))
    assert rec.state == DosingState.NOT_ARRIVED and rec.version == 1
    w(rec, "check_in", {"override_reason": "driver confirmed by phone"}, md=md)
    assert rec.state == DosingState.CHECKED_IN and rec.overridden


def w(rec, kind, raw=None, *, md, at=NOW, key=None, version=None):
    return dosing.write(rec, kind, raw or {}, idempotency_key=key or str(uuid.uuid4()),
                        expected_version=rec.version if version is None else version, actor=md, now=at)


def test_a_whole_day_in_order_and_the_discharge_signal(day, monkeypatch):
    rec, md = day
    got = []
    monkeypatch.setattr(signals.participant_discharged, "send",
                        lambda e, **kw: got.append((e.id, kw["cohort_session_id"], kw["discharged_at"])))
    w(rec, "check_in", md=md)
    w(rec, "pre_vitals", VITALS, md=md)
    assert rec.state == DosingState.PRE_CHECKS_DONE and not rec.dose_held
    w(rec, "dose", DOSE, md=md, at=NOW)
    assert rec.next_check_due_at == NOW + timedelta(minutes=15)
    assert dosing.display_state(rec, NOW + timedelta(minutes=14)) == DosingState.DOSED
    assert dosing.display_state(rec, NOW + timedelta(minutes=16)) == DosingState.CHECK_OVERDUE
    w(rec, "check", {"observation": "resting, responsive"}, md=md, at=NOW + timedelta(minutes=16))
    assert dosing.display_state(rec, NOW + timedelta(minutes=30)) == DosingState.IN_SESSION
    assert dosing.display_state(rec, NOW + timedelta(minutes=32)) == DosingState.CHECK_OVERDUE
    w(rec, "recovery", md=md)
    with pytest.raises(ValidationFailed, match="post-session vitals"):
        w(rec, "discharge", CRITERIA, md=md)
    w(rec, "post_vitals", VITALS, md=md)
    with pytest.raises(ValidationFailed) as err:
        w(rec, "discharge", {**CRITERIA, "driver_present": ""}, md=md)
    assert list(err.value.errors) == ["driver_present"]
    w(rec, "discharge", CRITERIA, md=md, at=NOW + timedelta(hours=3))
    assert rec.state == DosingState.DISCHARGED and rec.version == 8
    assert got == [(rec.enrollment_id, rec.session_id, NOW + timedelta(hours=3))]


def test_out_of_order_and_bad_entries_are_refused_and_change_nothing(day):
    rec, md = day
    with pytest.raises(ValidationFailed, match="not checked in"):
        w(rec, "check", {"observation": "x"}, md=md)
    with pytest.raises(ValidationFailed, match="comes after the dose"):
        w(rec, "discharge", CRITERIA, md=md)
    w(rec, "check_in", md=md)
    with pytest.raises(ValidationFailed, match="pre-session vitals"):
        w(rec, "dose", DOSE, md=md)
    w(rec, "pre_vitals", {**VITALS, "systolic": "170"}, md=md)
    assert rec.dose_held
    with pytest.raises(ValidationFailed, match="holds the dose"):
        w(rec, "dose", DOSE, md=md)
    w(rec, "hold_confirmed", {"reason": "white-coat; repeat 150/90"}, md=md)
    with pytest.raises(ValidationFailed) as err:
        w(rec, "dose", {**DOSE, "unit": ""}, md=md)
    assert list(err.value.errors) == ["unit"]
    with pytest.raises(ValidationFailed):
        w(rec, "pre_vitals", {**VITALS, "spo2": "120"}, md=md)
    before = rec.version
    assert db.session.scalar(select(DosingEntry.id).where(DosingEntry.record_id == rec.id)
                             .order_by(DosingEntry.id.desc()).limit(1))
    assert rec.version == before == 4


def test_a_replayed_key_is_stored_once_and_a_stale_version_is_refused_with_both(day):
    rec, md = day
    key = str(uuid.uuid4())
    first = w(rec, "check_in", md=md, key=key, version=1)
    again = w(rec, "check_in", md=md, key=key, version=1)
    assert again.replayed and again.entry.id == first.entry.id
    assert db.session.query(DosingEntry).filter_by(record_id=rec.id).count() == 1
    with pytest.raises(dosing.StaleWrite) as err:
        w(rec, "pre_vitals", VITALS, md=md, version=1)
    assert (err.value.expected_version, err.value.current_version, err.value.status) == (1, 2, 409)
    assert rec.state == DosingState.CHECKED_IN
    with pytest.raises(ValidationFailed):
        w(rec, "check_in", md=md, key="not-a-uuid")


def test_raw_columns_hold_no_plaintext(day):
    rec, md = day
    w(rec, "check_in", md=md)
    w(rec, "pre_vitals", {**VITALS, "note": "PLAINMARKER anxious"}, md=md)
    raw = db.session.execute(text("SELECT body_enc FROM dosing_entries WHERE record_id = :r"), {"r": rec.id}).scalars()
    bodies = [b for b in raw if b]
    assert bodies and all("PLAINMARKER" not in b and "124" not in b for b in bodies)
    assert "PLAINMARKER" in decrypt_field(bodies[-1])


def test_a_severe_adverse_event_raises_a_safety_alert_at_once_without_details(day):
    from retreat.messaging.models import OutboxMessage
    from tests import factories
    rec, md = day
    facilitator = factories.user("facilitator", password=None)
    rec.session.facilitator_id = facilitator.id
    db.session.flush()
    w(rec, "check_in", md=md)
    w(rec, "adverse_event", {"event": "nausea", "severity": "mild", "action": "bag offered"}, md=md)
    assert not rec.needs_attention
    assert db.session.query(OutboxMessage).filter(OutboxMessage.template == "safety_alert").count() == 0
    w(rec, "adverse_event", {"event": "SECRETEVENT seizure", "severity": "severe", "action": "911 called"}, md=md)
    assert rec.needs_attention
    msgs = db.session.query(OutboxMessage).filter(OutboxMessage.template == "safety_alert").all()
    assert msgs and {m.recipient_user_id for m in msgs} >= {md.id, facilitator.id}
    assert all("SECRETEVENT" not in str(m.context) and "seizure" not in str(m.context) for m in msgs)
    w(rec, "adverse_event", {"event": "again", "severity": "severe", "action": "oxygen"}, md=md)
    assert db.session.query(OutboxMessage).filter(OutboxMessage.template == "safety_alert").count() == 2 * len(msgs)
    with pytest.raises(ValidationFailed):
        w(rec, "adverse_event", {"event": "x", "severity": "catastrophic", "action": "y"}, md=md)


def test_entries_are_read_only_through_the_audited_path(day):
    from retreat.clinical.access import AccessDenied
    from retreat.clinical.dosing_access import read_entries
    from retreat.models import AuditEvent
    from tests import factories
    rec, md = day
    w(rec, "check_in", md=md)
    w(rec, "pre_vitals", {**VITALS, "note": "steady"}, md=md)
    views = read_entries(md, rec, ctx=None, now=NOW)
    assert [v.kind for v in views] == ["check_in", "pre_vitals"] and views[1].body["systolic"] == 124
    owner = db.session.get(factories.User, rec.enrollment.participant_id)
    assert len(read_entries(owner, rec, ctx=None, now=NOW)) == 2
    reads = db.session.query(AuditEvent).filter_by(action="clinical.read", object_type="dosing_record").count()
    assert reads == 2
    for outsider in (factories.user("facilitator", password=None), factories.user("finance", password=None),
                     factories.user("provider", password=None), factories.user("participant", password=None)):
        with pytest.raises(AccessDenied):
            read_entries(outsider, rec, ctx=None, now=NOW)
    assert db.session.query(AuditEvent).filter_by(action="clinical.denied").count() == 4


def test_the_participants_export_includes_their_dosing_days(day):
    from retreat.privacy.export import export_participant_data
    from tests import factories
    rec, md = day
    w(rec, "check_in", md=md)
    w(rec, "pre_vitals", VITALS, md=md)
    owner = db.session.get(factories.User, rec.enrollment.participant_id)
    data = export_participant_data(owner, owner, ctx=None, now=NOW)
    [dosing_day] = data["dosing_days"]
    assert dosing_day["state"] == "pre_checks_done"
    assert [e["kind"] for e in dosing_day["entries"]] == ["check_in", "pre_vitals"]
    assert dosing_day["entries"][1]["heart_rate"] == 70


def test_a_discharge_moves_the_check_ins_through_the_real_signal_without_a_lock_order_error(day):
    """The discharge handler locks the enrollment; the write takes it before the dosing record."""
    from retreat.integration.followup_models import Discharge

    rec, md = day
    for kind, raw in (("check_in", {}), ("pre_vitals", VITALS), ("dose", DOSE), ("recovery", {}),
                      ("post_vitals", VITALS)):
        w(rec, kind, raw, md=md)
    db.session.info.pop("retreat.locks_held", None)  # the sign-off arrives in a request of its own
    w(rec, "discharge", CRITERIA, md=md, at=NOW + timedelta(hours=3))
    assert rec.state == DosingState.DISCHARGED
    row = db.session.scalar(select(Discharge).where(Discharge.enrollment_id == rec.enrollment_id))
    assert row is not None and row.cohort_session_id == rec.session_id
