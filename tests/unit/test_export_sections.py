"""The participant's export is built from the sections each domain registers, covers every table
that points at a person (or names it as not exported, with the reason), and shows each section
under its heading with times in the person's zone."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import func, select

from retreat.cohorts.models import Attendance, AttendanceStatus, CohortSession, SessionKind
from retreat.consults.models import Consultation
from retreat.core import personal_data
from retreat.extensions import db as _db
from retreat.messaging import outbox
from retreat.models import AuditEvent
from retreat.privacy import export
from tests import factories
from tests import factories_clearance as fcl
from tests import finance_helpers as fh
from tests.conftest import signed_in

NOW = fh.NOW


def test_every_table_pointing_at_a_person_is_exported_or_excluded_with_a_reason(app):
    assert export.uncovered_tables(_db.metadata) == []
    names = set(_db.metadata.tables)
    # The exclusions name real tables, say why, and none of them is also exported.
    assert set(export.NOT_EXPORTED) <= names
    assert all(len(why) > 20 for why in export.NOT_EXPORTED.values())
    assert not set(export.NOT_EXPORTED) & personal_data.covered_tables()
    assert personal_data.covered_tables() <= names


def test_a_new_table_about_a_person_without_a_section_fails_the_check(app):
    meta = sa.MetaData()
    for t in _db.metadata.tables.values():
        t.to_metadata(meta)
    sa.Table("sms_opt_ins", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("enrollment_id", sa.ForeignKey("enrollments.id")))
    sa.Table("newsletter", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String))
    sa.Table("cohort_tags", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("cohort_id", sa.ForeignKey("cohorts.id")))
    assert export.uncovered_tables(meta) == ["newsletter", "sms_opt_ins"]


def _person_with_a_bit_of_everything():
    c = fh.cohort(starts_at=NOW - timedelta(days=30))
    enr = fh.seated(c, at=NOW - timedelta(days=60))
    person = enr.participant
    person.tz = "Asia/Tokyo"
    session = CohortSession(cohort_id=c.id, kind=SessionKind.INTEGRATION_CIRCLE.value, title="Circle one",
                            starts_at=NOW - timedelta(days=20), ends_at=NOW - timedelta(days=20, hours=-2))
    _db.session.add(session)
    _db.session.flush()
    _db.session.add(Attendance(session_id=session.id, enrollment_id=enr.id, status=AttendanceStatus.PRESENT.value))
    fac = factories.user("facilitator", password=None)
    start = NOW - timedelta(days=90)
    for participant_id in (person.id, None):  # their own consult, and a guest booking with their email
        _db.session.add(Consultation(
            calendar_uid=secrets.token_hex(8), facilitator_id=fac.id, participant_id=participant_id, start_at=start,
            end_at=start + timedelta(minutes=30), blocked_start=start, blocked_end=start + timedelta(minutes=30),
            status="completed", guest_name=person.name, guest_email=person.email.upper()))
        start += timedelta(days=1)
    outbox.enqueue(template="password_changed",
                   dedupe_key=f"t-{person.id}", to_user=person, now=NOW, context={"name": person.name})
    _db.session.flush()
    return enr, person


def test_the_export_holds_every_section_with_its_rows(app, db):
    enr, person = _person_with_a_bit_of_everything()
    data = export.export_participant_data(person, person, ctx=None, now=NOW)
    assert [c["section"] for c in data["contents"]] == [s.name for s in personal_data.sections()]
    assert data["account"]["email"] == person.email and data["time_zone"] == "Asia/Tokyo"
    [payment] = data["payments"]
    assert payment["amount_minor"] == enr.cohort.deposit_minor and payment["status"] == "succeeded"
    assert payment["receipt_reference"].startswith("pi_test_")
    assert sum(e["amount_minor"] for e in data["ledger"]) == enr.cohort.deposit_minor
    assert len(data["installments"]) == 1
    assert [a["session"] for a in data["attendance"]] == ["Circle one"]
    assert len(data["consultations"]) == 1 and len(data["guest_bookings_with_your_email"]) == 1
    assert "answers" not in data["guest_bookings_with_your_email"][0]  # whoever booked it may not be them
    [msg] = [m for m in data["messages_sent_to_you"] if m["subject"] == "Your password was changed"]
    assert msg["channel"] == "email" and msg["status"] == "pending" and "body" not in msg
    assert [e["id"] for e in data["enrollments"]] == [enr.id]
    json.dumps(data)  # JSON-able as it is
    assert _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == export.ACTION, AuditEvent.object_id == str(person.id))) == 1


def test_nothing_of_another_person_is_in_the_export(app, db):
    _, person = _person_with_a_bit_of_everything()
    other_enr, other = _person_with_a_bit_of_everything()
    data = json.dumps(export.export_participant_data(person, person, ctx=None, now=NOW))
    assert other.email.lower() not in data.lower() and other.name not in data


def test_the_intake_is_read_through_the_audited_path(app, db):
    s = fcl.setup(now=NOW)
    from retreat.clinical import clearance
    clearance.submit(s.enrollment, s.participant, fcl.marked_answers(), now=NOW)
    data = export.export_participant_data(s.participant, s.participant, ctx=None, now=NOW)
    [rec] = data["medical_records"]
    assert rec["medical_intake"]["answers"]["medications"].startswith(fcl.MARKER)
    # The export's own read is in the access log it returns.
    assert any(a["who"] == s.participant.email and a["record"] == "intake" for a in data["access_log"])


def test_the_readable_page_has_a_heading_per_section_and_local_times(app, db):
    _, person = _person_with_a_bit_of_everything()
    _db.session.commit()
    page = signed_in(app, person).get("/me/data/export.html")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for section in personal_data.sections():
        assert f"<h2 id=\"section-{section.name}-h\">" in html
    assert "Circle one" in html and "JST" in html  # times in the person's zone (Asia/Tokyo)
    assert "T00:00:00+00:00" not in html


def test_an_ask_while_a_build_is_finishing_gets_a_clear_409_and_writes_nothing(app, db):
    from retreat.privacy.models import DataExport
    from retreat.timeutil import now_utc
    person = factories.user("participant", password=None)
    # A build that finished after this ask was made (the other tab's): this ask is the duplicate.
    _db.session.add(DataExport(participant_id=person.id, times_built=1, finished_at=now_utc() + timedelta(minutes=1)))
    _db.session.commit()
    client = signed_in(app, person)
    for url in ("/me/data/export.json", "/me/data/export.html"):
        r = client.get(url)
        assert r.status_code == 409 and r.headers["Retry-After"] == "5"
        assert "Your export is already being prepared" in r.get_data(as_text=True)
    assert _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == export.ACTION)) == 0
    _db.session.expire_all()
    assert _db.session.scalar(select(DataExport.times_built).where(DataExport.participant_id == person.id)) == 1
