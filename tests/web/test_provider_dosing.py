"""The provider's dosing pages: the staffing list, the board (forms without JavaScript, JSON for
polling and offline replay), stale writes, idempotent replays, the thresholds screen, and who
may not see any of it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from retreat.clinical import staffing
from retreat.clinical.dosing_models import DosingEntry, DosingRecord, DosingSettings
from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.extensions import db as _db
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.unit.test_dosing_readiness import _prepared
from tests.unit.test_dosing_staffing import _clinician

VITALS = {"systolic": "124", "diastolic": "80", "heart_rate": "70", "spo2": "98"}


def _day(ready=True):
    now = now_utc()
    org = factories.provider_org()
    lead = _clinician(org)
    c = fc.cohort(fc.retreat(region="CO"), provider_organization_id=org.id, starts_at=now + timedelta(days=5))
    s = CohortSession(cohort=c, kind=SessionKind.DOSING, title="Dosing day 1", starts_at=c.starts_at + timedelta(days=1),
                      ends_at=c.starts_at + timedelta(days=1, hours=5), location="Ceremony room")
    _db.session.add(s)
    _db.session.flush()
    enr = fc.applicant(c, now=now, name="Robin Ready")
    seats.take_hold(enr, now=now, actor=None)
    enrollment.confirm_seat(enr, now=now, actor=None)
    fc.record_clearance(enr, now=now)
    _prepared(enr, skip=() if ready else ("ride_home",))
    staffing.assign(s, lead, actor=lead)
    _db.session.commit()
    return org, lead, s, enr


def _post(client, s, enr, kind, data, version=1, key=None, as_json=False):
    body = {**data, "idempotency_key": key or str(uuid.uuid4()), "expected_version": str(version)}
    url = f"/provider/dosing/{s.id}/people/{enr.id}/{kind}"
    if as_json:
        return client.post(url, json=body)
    return client.post(url, data=body)


def test_staffing_list_board_and_a_form_write(app, db):
    org, lead, s, enr = _day()
    client = fc.client_for(app, lead)
    page = client.get("/provider/dosing")
    assert page.status_code == 200 and "Dosing day 1" in page.get_data(as_text=True)
    assert lead.name in page.get_data(as_text=True) and "Unassign" in page.get_data(as_text=True)
    board = client.get(f"/provider/dosing/{s.id}")
    assert board.status_code == 200 and "no-store" in board.headers["Cache-Control"]
    html = board.get_data(as_text=True)
    assert "Robin Ready" in html and "records doses" in html and "Check in" in html
    r = _post(client, s, enr, "check_in", {})
    assert r.status_code == 302
    r = _post(client, s, enr, "pre_vitals", {**VITALS, "systolic": "400"}, version=2)
    assert r.status_code == 422
    assert "Systolic blood pressure (mmHg) must be between 50 and 260" in r.get_data(as_text=True)
    rec = db.session.scalar(select(DosingRecord).where(DosingRecord.enrollment_id == enr.id))
    assert rec.version == 2 and rec.state == "checked_in"


def test_json_replay_is_stored_once_and_a_stale_version_is_409_with_both(app, db):
    org, lead, s, enr = _day()
    client = fc.client_for(app, lead)
    key = str(uuid.uuid4())
    first = _post(client, s, enr, "check_in", {}, key=key, as_json=True)
    again = _post(client, s, enr, "check_in", {}, key=key, as_json=True)
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["replayed"] and again.get_json()["entry_id"] == first.get_json()["entry_id"]
    assert db.session.scalar(select(func.count()).select_from(DosingEntry)
                             .where(DosingEntry.idempotency_key == key)) == 1
    stale = _post(client, s, enr, "pre_vitals", VITALS, version=1, as_json=True)
    assert stale.status_code == 409
    assert stale.get_json()["current_version"] == 2 and stale.get_json()["your_version"] == 1
    form_stale = _post(client, s, enr, "pre_vitals", VITALS, version=1)
    text = form_stale.get_data(as_text=True)
    assert form_stale.status_code == 409 and "based on version 1" in text and "(version 2)" in text and "124" in text
    state = client.get(f"/provider/dosing/{s.id}/state.json").get_json()
    person = state["people"][0]
    assert person["state"] == "checked_in" and person["version"] == 2 and len(person["entries"]) == 1


def test_not_ready_is_refused_with_the_reason_then_an_assigned_override(app, db):
    org, lead, s, enr = _day(ready=False)
    client = fc.client_for(app, lead)
    r = _post(client, s, enr, "check_in", {}, as_json=True)
    assert r.status_code == 422 and "No ride home arranged" in r.get_json()["error"]
    r = _post(client, s, enr, "check_in", {"override_reason": "Driver confirmed by phone, waiting outside"},
              as_json=True)
    assert r.status_code == 201
    assert "Checked in by override" in client.get(f"/provider/dosing/{s.id}").get_data(as_text=True)


def test_other_organisations_facilitators_and_finance_are_refused(app, db):
    org, lead, s, enr = _day()
    other = fc.client_for(app, _clinician(factories.provider_org()))
    for url in (f"/provider/dosing/{s.id}", f"/provider/dosing/{s.id}/state.json"):
        assert other.get(url).status_code == 404
    assert _post(other, s, enr, "check_in", {}, as_json=True).status_code == 404
    assert s.title not in other.get("/provider/dosing").get_data(as_text=True)
    for role in ("facilitator", "finance"):
        c = fc.client_for(app, factories.user(role, password=None))
        assert c.get(f"/provider/dosing/{s.id}").status_code in (403, 404)
        assert c.get(f"/provider/dosing/{s.id}/state.json").status_code in (403, 404)
    assert db.session.scalar(select(func.count()).select_from(DosingEntry)) == 0


def test_threshold_settings_screen_saves_and_refuses_bad_input(app, db):
    org, lead, s, enr = _day()
    client = fc.client_for(app, lead)
    assert client.get("/provider/dosing/settings").status_code == 200
    good = {"accepted_kinds": ["MD", "NP"], "hold_systolic": "150", "hold_diastolic": "95", "hr_high": "115",
            "hr_low": "50", "spo2_low": "93", "check_interval_minutes": "10"}
    bad = client.post("/provider/dosing/settings", data={**good, "hr_low": "130"})
    assert bad.status_code == 422 and db.session.scalar(select(DosingSettings)) is None
    assert client.post("/provider/dosing/settings", data=good).status_code == 302
    row = db.session.scalar(select(DosingSettings).where(DosingSettings.organization_id == org.id))
    assert (row.accepted_kinds, row.hold_systolic, row.check_interval_minutes) == (["MD", "NP"], 150, 10)


def test_session_record_downloads_as_pdf_and_csv_for_the_organisation_only(app, db):
    import io

    from pypdf import PdfReader

    org, lead, s, enr = _day()
    client = fc.client_for(app, lead)
    _post(client, s, enr, "check_in", {}, as_json=True)
    _post(client, s, enr, "pre_vitals", {**VITALS, "note": "=HYPERLINK(calm)"}, version=2, as_json=True)
    pdf = client.get(f"/provider/dosing/{s.id}/record.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Robin Ready" in text and "BP 124/80" in text
    csv_r = client.get(f"/provider/dosing/{s.id}/record.csv")
    body = csv_r.get_data(as_text=True)
    assert csv_r.status_code == 200 and "pre vitals" in body and "BP 124/80" in body and "no-store" in csv_r.headers[
        "Cache-Control"]
    other = fc.client_for(app, _clinician(factories.provider_org()))
    assert other.get(f"/provider/dosing/{s.id}/record.pdf").status_code == 404
    assert other.get(f"/provider/dosing/{s.id}/record.csv").status_code == 404


def _full_day_to_recovery(client, s, enr, *, checked_in=False):
    for kind, data in ((() if checked_in else (("check_in", {}),)) + (("pre_vitals", VITALS),
                       ("dose", {"medicine": "Ketamine", "route": "im", "amount": "50", "unit": "mg"}),
                       ("check", {"observation": "Calm"}), ("recovery", {}), ("post_vitals", VITALS))):
        version = _db.session.scalar(select(DosingRecord.version).where(DosingRecord.enrollment_id == enr.id)) or 1
        assert _post(client, s, enr, kind, data, version=version, as_json=True).status_code == 201, kind
    return _db.session.scalar(select(DosingRecord.version).where(DosingRecord.enrollment_id == enr.id))


def test_the_participant_names_a_driver_and_the_board_shows_who_picks_them_up_at_discharge(app, db):
    org, lead, s, enr = _day(ready=False)
    me = fc.client_for(app, enr.participant)
    url = f"/me/enrollments/{enr.id}/checklist/ride_home"
    page = me.get(url).get_data(as_text=True)
    assert "Driver&#39;s name" in page and "Driver&#39;s phone number" in page and 'type="tel"' in page
    r = me.post(url, data={"driver_name": "", "driver_phone": "12345"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "Enter the driver&#39;s name." in html and "Enter a phone number that can be called" in html
    assert preparation.get_item(enr, "ride_home").completed_at is None
    r = me.post(url, data={"driver_name": "Sam Rivera", "driver_phone": "(303) 555-0199"})
    assert r.status_code == 302
    assert preparation.ride_home_from(preparation.get_item(enr, "ride_home").answer).phone == "+13035550199"
    assert me.get(url).get_data(as_text=True).count("Sam Rivera") >= 1  # the form shows what is on file

    client = fc.client_for(app, lead)
    board = client.get(f"/provider/dosing/{s.id}").get_data(as_text=True)
    assert "Ride home: Sam Rivera" in board and 'href="tel:+13035550199"' in board
    version = _full_day_to_recovery(client, s, enr)
    board = client.get(f"/provider/dosing/{s.id}").get_data(as_text=True)
    assert "The named driver is present at pickup: <strong>Sam Rivera, +1 303-555-0199</strong></span>" in board
    criteria = {f: "yes" for f in ("alert_oriented", "vitals_in_range", "walks_steadily", "driver_present")}
    r = _post(client, s, enr, "discharge", criteria, version=version, as_json=True)
    assert r.status_code == 201
    state = client.get(f"/provider/dosing/{s.id}/state.json").get_json()["people"][0]
    assert state["driver"] == "Sam Rivera, +1 303-555-0199"
    assert "picked up by Sam Rivera, +1 303-555-0199" in state["entries"][-1]["summary"]


def test_a_legacy_ride_home_answer_is_not_ready_and_its_discharge_needs_a_note_naming_who(app, db):
    org, lead, s, enr = _day(ready=False)
    item = preparation.get_item(enr, "ride_home")
    item.answer, item.completed_at = "My partner picks me up", now_utc()
    _db.session.commit()
    client = fc.client_for(app, lead)
    r = _post(client, s, enr, "check_in", {}, as_json=True)
    assert r.status_code == 422 and "Ride home: driver's name and phone needed" in r.get_json()["error"]
    me = fc.client_for(app, enr.participant)
    assert "Your earlier answer: “My partner picks me up”" in me.get(
        f"/me/enrollments/{enr.id}/checklist/ride_home").get_data(as_text=True)
    assert _post(client, s, enr, "check_in", {"override_reason": "Partner confirmed by phone"},
                 as_json=True).status_code == 201
    version = _full_day_to_recovery(client, s, enr, checked_in=True)
    criteria = {f: "yes" for f in ("alert_oriented", "vitals_in_range", "walks_steadily", "driver_present")}
    r = _post(client, s, enr, "discharge", criteria, version=version, as_json=True)
    assert r.status_code == 422 and "write in the note who picks them up" in r.get_json()["errors"]["note"][0]
    r = _post(client, s, enr, "discharge", {**criteria, "note": "Picked up by partner Jo Lee"}, version=version,
              as_json=True)
    assert r.status_code == 201


def test_the_session_record_csv_quotes_formulas_in_every_column(app, db):
    import csv
    import io

    org, lead, s, enr = _day()
    enr.participant.name = '=HYPERLINK("http://evil.example","x")'
    _db.session.commit()
    client = fc.client_for(app, lead)
    assert _post(client, s, enr, "check_in", {}, as_json=True).status_code == 201
    notes = ["@SUM(A1)", "+1 called", "-2+3", "\tcmd", "=1+1"]
    for i, note in enumerate(notes):
        assert _post(client, s, enr, "note", {"note": note}, version=2 + i, as_json=True).status_code == 201
    rows = list(csv.DictReader(io.StringIO(client.get(f"/provider/dosing/{s.id}/record.csv").get_data(as_text=True))))
    assert {r["person"] for r in rows} == {"'=HYPERLINK(\"http://evil.example\",\"x\")"}
    details = [r["details"] for r in rows if r["entry"] == "note"]
    # a leading tab is trimmed when the note is stored (the guard for it is pinned in test_spreadsheet_cells)
    assert details == ["'@SUM(A1)", "'+1 called", "'-2+3", "cmd", "'=1+1"]
    for r in rows:
        assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for v in r.values()), r


def test_the_session_record_pdf_reads_back_names_dose_vitals_and_discharge(app, db):
    import io

    from pypdf import PdfReader

    org, lead, s, enr = _day()
    client = fc.client_for(app, lead)
    version = _full_day_to_recovery(client, s, enr)
    criteria = {f: "yes" for f in ("alert_oriented", "vitals_in_range", "walks_steadily", "driver_present")}
    assert _post(client, s, enr, "discharge", criteria, version=version, as_json=True).status_code == 201
    pdf = client.get(f"/provider/dosing/{s.id}/record.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and "no-store" in pdf.headers["Cache-Control"]
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Robin Ready" in text and lead.name in text and "Dosing day 1" in text
    assert "Ketamine 50 mg Intramuscular injection" in text  # the dose record
    assert "BP 124/80" in text and "HR 70" in text and "SpO2 98%" in text  # pre and post vitals
    assert "All discharge criteria confirmed" in text and "picked up by Sam Rivera, +1 303-555-0101" in text
    assert "Discharged" in text
