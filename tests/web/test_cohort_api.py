"""Cohorts API: public listing, participant application and enrollment, CSRF, bad input."""

from datetime import timedelta

from sqlalchemy import func, select

from retreat.cohorts.models import CohortStatus, Enrollment
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc


def _cohort(**kw):
    return fc.cohort(starts_at=now_utc() + timedelta(days=60), **kw)


def test_list_and_detail_are_public_and_shaped(app, db):
    client = fc.client_for(app)
    c = _cohort(capacity=12)
    draft = _cohort(status=CohortStatus.DRAFT)
    r = client.get("/api/v1/cohorts")
    assert r.status_code == 200
    ids = [x["id"] for x in r.json["cohorts"]]
    assert c.id in ids and draft.id not in ids
    item = next(x for x in r.json["cohorts"] if x["id"] == c.id)
    assert item["price"] == {"amount_minor": 450000, "currency": "USD"}
    assert item["deposit"] == {"amount_minor": 50000, "currency": "USD"}
    assert item["seats_available"] == 12 and item["waitlist_open"] is False and item["status"] == "open"
    assert {"retreat", "title", "starts_at", "ends_at", "timezone", "capacity"} <= set(item)
    assert client.get(f"/api/v1/cohorts/{c.id}").json["id"] == c.id
    assert client.get(f"/api/v1/cohorts/{draft.id}").status_code == 404
    assert client.get("/api/v1/cohorts/999999").json["error"]


def test_participant_applies_and_reads_enrollment(app, db):
    c = _cohort()
    client = fc.client_for(app, factories.user("participant", password=None))
    bad = client.post(f"/api/v1/cohorts/{c.id}/applications", data="{not json", content_type="application/json")
    assert bad.status_code in (400, 422) and bad.json["error"]
    r = client.post(f"/api/v1/cohorts/{c.id}/applications", json={"partner_email": "nope"})
    assert r.status_code == 422 and "partner_email" in r.json["errors"]
    r = client.post(f"/api/v1/cohorts/{c.id}/applications", json={"motivation": "x" * 2001})
    assert r.status_code == 422 and "motivation" in r.json["errors"]
    r = client.post(f"/api/v1/cohorts/{c.id}/applications", json={"motivation": "Hello"})
    assert r.status_code == 201, r.json
    enr_id = r.json["id"]
    assert r.json["status"] == "applied" and r.json["checklist_total"] == 7
    db.session.commit()
    r = client.post(f"/api/v1/cohorts/{c.id}/applications", json={})
    assert r.status_code == 409 and "already applied" in r.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Enrollment)) == 1
    r = client.get(f"/api/v1/enrollments/{enr_id}")
    assert r.status_code == 200 and r.json["steps"][0]["label"] == "Applied"
    other = fc.client_for(app, factories.user("participant", password=None))
    assert other.get(f"/api/v1/enrollments/{enr_id}").status_code == 404
    assert fc.client_for(app).get(f"/api/v1/enrollments/{enr_id}").status_code == 401
    staff = fc.client_for(app, factories.user("facilitator", password=None))
    assert staff.post(f"/api/v1/cohorts/{c.id}/applications", json={}).status_code == 403


def test_application_post_requires_csrf(app, db, make_client):
    anonymous = app.test_client()
    assert anonymous.post("/api/v1/cohorts/1/applications", json={}).status_code == 401
    participant = make_client("participant")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        r = participant.post("/api/v1/cohorts/1/applications", json={})
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert r.status_code == 400 and "expired" in r.json["error"]
