"""Clinical pages: the participant's intake and outcome, the provider portal, the admin
break-glass page, the participant's export and deletion request, and the API."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.accounts import api_tokens
from retreat.clinical import clearance, clearance_status, screening
from retreat.clinical.models import ClearanceStatus, SafetyAlert
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.models import AuditEvent
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER


@pytest.fixture()
def s(db):
    s = fcl.setup()
    db.session.commit()  # the arranged data survives a view's rollback
    return s


@pytest.fixture()
def as_user(app, db):
    """as_user(user or role) -> a test client signed in as them."""

    def _make(who="participant"):
        user = who if not isinstance(who, str) else factories.user(who, password=None)
        db.session.commit()  # everything arranged so far survives a view's rollback
        return fcl.signed_in(app, user)

    return _make


def form_data(answers: dict, action: str) -> dict:
    data = {"action": action}
    for key, value in answers.items():
        if isinstance(value, bool):
            if value:
                data[key] = "y"
        elif value is not None:
            data[key] = str(value)
    return data


def intake_url(s):
    return f"/me/enrollments/{s.enrollment.id}/intake"


def test_participant_saves_a_draft_then_submits(as_user, s, db):
    c = as_user(s.participant)
    r = c.get(intake_url(s))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert b"Medical intake" in r.data and b"PHQ-9" in r.data and b"988" in r.data  # the footer always
    assert b'id="crisis-panel" hidden' in r.data
    r = c.post(intake_url(s), data=form_data({"medications": MARKER, "height_cm": 170}, "save"))
    assert r.status_code == 302
    r = c.get(intake_url(s))
    assert MARKER.encode() in r.data and b"last saved" in r.data
    r = c.post(intake_url(s), data=form_data(fcl.answers(medications=""), "submit"))
    assert r.status_code == 422 and b"Please answer this question." in r.data
    assert s.enrollment.status == S.APPLIED and clearance_status.open_request(s.enrollment) is None
    r = c.post(intake_url(s), data=form_data(fcl.answers(), "submit"))
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/me/enrollments/{s.enrollment.id}/clearance")
    r = c.get(r.headers["Location"])
    assert b"In medical review" in r.data and s.org.name.encode() in r.data
    r = c.get(intake_url(s))  # submitted: locked
    assert r.status_code == 302


def test_bad_values_are_refused_with_field_messages(as_user, s, db):
    c = as_user(s.participant)
    r = c.post(intake_url(s), data={"action": "save", "phq9_1": "7", "height_cm": "tall", "weight_kg": "9"})
    assert r.status_code == 422
    assert b"Not a valid choice" in r.data and b"integer" in r.data
    r = c.post(intake_url(s), data={"action": "save", "weight_kg": "9"})
    assert r.status_code == 422 and b"between 25 and 350" in r.data
    assert clearance_status.get_intake(s.enrollment) is None


def test_crisis_resources_and_alert_as_soon_as_item9_is_positive(as_user, s, db):
    c = as_user(s.participant)
    r = c.post(f"{intake_url(s)}/autosave", data={"phq9_9": "1"})
    assert r.status_code == 200 and r.get_json()["safety"] is True
    assert db.session.scalar(select(SafetyAlert)).enrollment_id == s.enrollment.id
    r = c.get(intake_url(s))
    assert b'id="crisis-panel"  role="alert"' in r.data or b'role="alert" aria-labelledby="crisis-heading"' in r.data
    assert b"988" in r.data and b"911" in r.data
    r = c.post(f"{intake_url(s)}/autosave", data={"phq9_9": "9"})
    assert r.status_code == 422


def test_provider_queue_request_and_decision(as_user, s, db):
    req = fcl.submit(s, hyperthyroidism=True, medications=MARKER)
    c = as_user(s.provider)
    r = c.get("/provider/")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert s.participant.name.encode() in r.data and b"Needs explicit medical clearance" in r.data
    assert MARKER.encode() not in r.data  # the queue shows no answers
    r = c.get(f"/provider/requests/{req.id}")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert MARKER.encode() in r.data and b"Hyperthyroidism" in r.data and b"PHQ-9" in r.data
    assert s.provider.licenses[0].number.encode() in r.data
    sections = {e.details["section"] for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "clinical.read", AuditEvent.actor_id == s.provider.id))}
    assert sections == {"answers", "screening", "decision", "thread", "consult_safety"}
    r = c.post(f"/provider/requests/{req.id}/decide", data={"decision": "cleared", "attestation_name": "nobody",
                                                           "version": req.version})
    assert r.status_code == 422 and b"Type your full name" in r.data and req.decision is None
    r = c.post(f"/provider/requests/{req.id}/decide", data={
        "decision": "cleared_with_conditions", "conditions": "BP check on arrival", "conditions_shareable": "y",
        "attestation_name": s.provider.name, "version": req.version})
    assert r.status_code == 302
    assert req.decision == "cleared_with_conditions" and s.enrollment.status == S.CLEARED
    r = c.get(f"/provider/requests/{req.id}")
    assert b"Decision: Cleared with conditions" in r.data and b"BP check on arrival" in r.data
    p = as_user(s.participant)
    r = p.get(f"/me/enrollments/{s.enrollment.id}/clearance")
    assert b"Good news" in r.data and b"BP check on arrival" in r.data and b"pay your deposit" in r.data


def test_stale_decision_form_changes_nothing(as_user, s, db):
    req = fcl.submit(s)
    c = as_user(s.provider)
    stale_version = req.version
    colleague = factories.user("provider", org=s.org, password=None)
    clearance.decide(req, colleague, decision="not_cleared", attestation_name=colleague.name,
                     expected_version=req.version, now=s.now)
    db.session.commit()
    r = c.post(f"/provider/requests/{req.id}/decide", data={"decision": "cleared", "attestation_name": s.provider.name,
                                                           "version": stale_version}, follow_redirects=True)
    assert r.status_code == 200 and b"already decided by" in r.data
    assert req.decision == "not_cleared" and req.decided_by_id == colleague.id
    req2 = fcl.submit(fcl.setup(org=s.org))
    r = c.post(f"/provider/requests/{req2.id}/decide", data={"decision": "cleared", "attestation_name": s.provider.name,
                                                            "version": req2.version - 1}, follow_redirects=True)
    assert b"changed while you were looking" in r.data and req2.decision is None


def test_expired_licence_sees_no_decision_form_and_cannot_post(as_user, db):
    from datetime import date

    s = fcl.setup(provider_kw={"license_expires": date.today() - timedelta(days=2)})
    req = fcl.submit(s)
    c = as_user(s.provider)
    r = c.get(f"/provider/requests/{req.id}")
    assert b"cannot record a decision" in r.data and b"Record decision" not in r.data
    r = c.post(f"/provider/requests/{req.id}/decide", data={"decision": "cleared", "attestation_name": s.provider.name,
                                                           "version": req.version}, follow_redirects=True)
    assert b"licence on file has expired" in r.data and req.decision is None


def test_more_information_thread_round_trip(as_user, s, db):
    req = fcl.submit(s)
    prov = as_user(s.provider)
    r = prov.post(f"/provider/requests/{req.id}/info", data={"message": "", "version": req.version})
    assert r.status_code == 422 and b"Write your message" in r.data
    r = prov.post(f"/provider/requests/{req.id}/info", data={"message": "Which inhaler?", "version": req.version})
    assert r.status_code == 302 and req.status == ClearanceStatus.INFO_REQUESTED
    part = as_user(s.participant)
    r = part.get(f"/me/enrollments/{s.enrollment.id}/clearance")
    assert b"Which inhaler?" in r.data and b"update your intake" in r.data
    r = part.post(f"/me/enrollments/{s.enrollment.id}/clearance/reply", data={"message": "Salbutamol as needed"})
    assert r.status_code == 302
    r = part.get(intake_url(s))
    assert r.status_code == 200 and b"asked for more information" in r.data
    r = part.post(intake_url(s), data=form_data(fcl.answers(medications="salbutamol"), "submit"))
    assert r.status_code == 302 and req.status == ClearanceStatus.PENDING
    r = prov.get(f"/provider/requests/{req.id}")
    assert b"Salbutamol as needed" in r.data and b"salbutamol" in r.data


def test_not_cleared_outcome_is_kind_and_offers_a_consult(as_user, s, db):
    req = fcl.submit(s)
    fcl.decide(s, req, "not_cleared", participant_note="Please talk to your GP about your blood pressure first.")
    r = as_user(s.participant).get(f"/me/enrollments/{s.enrollment.id}/clearance")
    assert b"Book a free consultation" in r.data and b"not medically the right fit" in r.data
    assert b"talk to your GP" in r.data


def test_export_and_deletion_request(as_user, s, db):
    fcl.submit(s, medications=MARKER)
    c = as_user(s.participant)
    assert c.get("/me/data").status_code == 200
    r = c.get("/me/data/export.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "attachment" in r.headers["Content-Disposition"]
    assert r.get_json()["medical_records"][0]["medical_intake"]["answers"]["medications"] == MARKER
    r = c.get("/me/data/export.html")
    assert MARKER.encode() in r.data and b"Who has read your medical record" in r.data
    r = c.post("/me/data/delete", data={"reason": ""})
    assert r.status_code == 422 and b"Tick the box" in r.data
    r = c.post("/me/data/delete", data={"confirm": "y"}, follow_redirects=True)
    assert b"deletion request is logged" in r.data and b"You asked for deletion" in r.data
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "privacy.deletion_requested"))


def test_admin_break_glass_page(as_user, s, db):
    fcl.submit(s, medications=MARKER)
    c = as_user("admin")
    r = c.get("/admin/break-glass")
    assert r.status_code == 200 and s.participant.name.encode() in r.data and MARKER.encode() not in r.data
    r = c.post("/admin/break-glass", data={"enrollment_id": s.enrollment.id, "reason": "short"})
    assert r.status_code == 422 and MARKER.encode() not in r.data and b"at least 20" in r.data
    r = c.post("/admin/break-glass", data={"enrollment_id": s.enrollment.id,
                                           "reason": "Safety alert raised and the provider cannot be reached"})
    assert r.status_code == 200 and MARKER.encode() in r.data and r.headers["Cache-Control"] == "no-store"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clinical.break_glass"))
    assert event.details["highlight"] is True and event.actor_id == c.user.id


def test_facilitator_pages(as_user, s, db):
    req = fcl.submit(s, phq9_9=1)
    fcl.decide(s, req, "cleared_with_conditions", conditions="Vegan meals please", conditions_shareable=True)
    c = as_user("facilitator")
    r = c.get("/facilitator/safety-alerts")
    assert b"Safety review needed" in r.data and s.participant.name.encode() in r.data
    alert = db.session.scalar(select(SafetyAlert))
    assert c.post(f"/facilitator/safety-alerts/{alert.id}/acknowledge").status_code == 302
    assert alert.status == "acknowledged"
    r = c.get(f"/facilitator/cohorts/{s.cohort.id}/clearance")
    assert b"Cleared with conditions" in r.data and b"Vegan meals please" in r.data
    assert c.get("/facilitator/clearance").status_code == 200


def test_api_for_providers_only(app, s, db):
    req = fcl.submit(s, medications=MARKER)
    _, raw = api_tokens.create_token(s.provider, name="t")
    c = app.test_client()
    r = c.get("/api/v1/clearance-requests", headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 200 and r.get_json()["items"][0]["id"] == req.id
    assert MARKER not in r.get_data(as_text=True)
    r = c.get(f"/api/v1/clearance-requests/{req.id}", headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 200 and r.get_json()["answers"]["medications"] == MARKER
    assert r.headers["Cache-Control"] == "no-store"
    assert c.get("/api/v1/clearance-requests").status_code == 401
    _, fac = api_tokens.create_token(factories.user("facilitator", password=None), name="t")
    assert c.get(f"/api/v1/clearance-requests/{req.id}", headers={"Authorization": f"Bearer {fac}"}).status_code == 403


def test_intake_form_lists_every_condition_and_question(as_user, s, db):
    r = as_user(s.participant).get(intake_url(s))
    text = r.get_data(as_text=True)
    for c in screening.CONDITIONS:
        assert c.label.replace("&", "&amp;") in text
    for item in screening.PHQ9_ITEMS + screening.GAD7_ITEMS:
        assert item.split(",")[0] in text
