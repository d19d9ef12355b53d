"""Staff operations over the API (issue #19 item 2): consultations listed, cancelled and moved by
their facilitator; cohorts, enrollments and rosters of the caller's team (never a clinical field);
cursor pages; weak ETags with 304 on If-None-Match; scopes and 4xx that change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from retreat.accounts import api_tokens
from retreat.extensions import db as _db
from retreat.models import AuditEvent, CohortSession, Consultation
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.unit.test_consult_support import around_the_clock_facilitator, book
from tests.web.test_finance_query_counts import counting

CLINICAL = ("intake", "clearance", "diagnosis", "screening", "phq", "gad", "dose", "vitals", "motivation",
            "contraindication", "condition", "answers", "reason", "medical")


def _h(user, scopes=None) -> dict:
    _t, raw = api_tokens.create_token(user, name="t", scopes=scopes)
    _db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def _slot(days: int, hour: int) -> datetime:
    return datetime.combine((now_utc() + timedelta(days=days)).date(), time(hour), UTC)


@pytest.fixture()
def consults(db):
    fran = around_the_clock_facilitator(name="Fran")
    oli = around_the_clock_facilitator(name="Oli")
    now = now_utc()
    mine = [book(_slot(d, 15), now=now, facilitator_id=fran.id).consult for d in (5, 6, 7)]
    theirs = book(_slot(5, 16), now=now, facilitator_id=oli.id).consult
    _db.session.commit()
    return {"fran": fran, "oli": oli, "mine": mine, "theirs": theirs}


def _pages(client, path, headers, **params):
    items, cursor, pages = [], None, 0
    while True:
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        r = client.get(path, query_string=q, headers=headers)
        assert r.status_code == 200, r.get_json()
        items += r.get_json()["items"]
        pages += 1
        cursor = r.get_json()["next_cursor"]
        if cursor is None:
            return items, pages


def test_facilitator_lists_own_consults_admin_all(client, consults):
    h = _h(consults["fran"], ["read:consults"])
    items, pages = _pages(client, "/api/v1/consultations", h, limit=2)
    assert pages == 2 and [i["id"] for i in items] == [c.id for c in consults["mine"]]
    assert not any(k in CLINICAL for i in items for k in i)
    admin_items, _ = _pages(client, "/api/v1/consultations", _h(factories.user("admin", password=None)))
    assert {i["id"] for i in admin_items} == {c.id for c in consults["mine"]} | {consults["theirs"].id}
    day = _slot(6, 15).date().isoformat()
    one, _ = _pages(client, "/api/v1/consultations", h, **{"from": day, "to": day})
    assert [i["id"] for i in one] == [consults["mine"][1].id]
    assert _pages(client, "/api/v1/consultations", h, status="cancelled")[0] == []


@pytest.mark.parametrize("query, field", [({"status": "gone"}, "status"), ({"cursor": "!!"}, "cursor"),
                                          ({"limit": 0}, "limit"), ({"from": "2026-13-01"}, "from"),
                                          ({"from": "2026-12-10", "to": "2026-12-01"}, "to")])
def test_bad_list_filters_are_400_naming_the_field(client, consults, query, field):
    r = client.get("/api/v1/consultations", query_string=query, headers=_h(consults["fran"]))
    assert r.status_code == 400 and field in r.get_json()["errors"], r.get_json()


def test_list_etag_304_until_the_page_changes(client, consults):
    h = _h(consults["fran"])
    first = client.get("/api/v1/consultations", headers=h)
    tag = first.headers["ETag"]
    assert tag.startswith('W/"')
    again = client.get("/api/v1/consultations", headers={**h, "If-None-Match": tag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == tag
    assert client.get("/api/v1/consultations", headers={**h, "If-None-Match": 'W/"other", ' + tag}).status_code == 304
    assert client.get("/api/v1/consultations", headers={**h, "If-None-Match": 'W/"other"'}).status_code == 200
    assert client.post(f"/api/v1/consultations/{consults['mine'][0].id}/cancel", headers=h).status_code == 200
    changed = client.get("/api/v1/consultations", headers={**h, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.get_json()["items"][0]["status"] == "cancelled"


def test_cancel_through_the_api(client, consults):
    h = _h(consults["fran"], ["write:consults"])
    target = consults["mine"][0]
    r = client.post(f"/api/v1/consultations/{target.id}/cancel", headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled" and r.get_json()["cancelled_by"] == "facilitator"
    _db.session.expire_all()
    assert _db.session.get(Consultation, target.id).status == "cancelled"
    again = client.post(f"/api/v1/consultations/{target.id}/cancel", headers=h)
    assert again.status_code == 200 and again.get_json()["sequence"] == r.get_json()["sequence"]  # nothing new
    # another facilitator's consult is not found, and stays booked
    assert client.post(f"/api/v1/consultations/{consults['theirs'].id}/cancel", headers=h).status_code == 404
    assert client.post("/api/v1/consultations/999999/cancel", headers=h).status_code == 404
    _db.session.expire_all()
    assert _db.session.get(Consultation, consults["theirs"].id).status == "booked"


def test_write_needs_the_write_scope_and_the_facilitator_role(client, consults):
    target = consults["mine"][0]
    read_only = _h(consults["fran"], ["read:consults"])
    r = client.post(f"/api/v1/consultations/{target.id}/cancel", headers=read_only)
    assert r.status_code == 403 and r.get_json()["error"] == "This token lacks the scope write:consults."
    admin = _h(factories.user("admin", password=None))
    assert client.post(f"/api/v1/consultations/{target.id}/cancel", headers=admin).status_code == 403
    fin = _h(factories.user("finance", password=None))
    assert client.get("/api/v1/consultations", headers=fin).status_code == 403
    _db.session.expire_all()
    assert _db.session.get(Consultation, target.id).status == "booked"


def test_reschedule_through_the_api(client, consults):
    h = _h(consults["fran"], ["write:consults"])
    target = consults["mine"][0]
    new_start = _slot(9, 18)
    r = client.post(f"/api/v1/consultations/{target.id}/reschedule", json={"start": new_start.isoformat()},
                    headers=h)
    assert r.status_code == 200, r.get_json()
    assert datetime.fromisoformat(r.get_json()["start"]) == new_start and r.get_json()["sequence"] == 1
    _db.session.expire_all()
    assert _db.session.get(Consultation, target.id).start_at == new_start
    assert _db.session.scalar(select(AuditEvent).where(AuditEvent.action == "consult.rescheduled_by_staff",
                                                       AuditEvent.actor_id == consults["fran"].id)) is not None


@pytest.mark.parametrize("body, status", [
    ({"start": "2020-01-01T10:00:00Z"}, 422),  # past
    ({"start": "not a time"}, 422),
    ({"start": "2027-01-01T10:00:00"}, 422),  # no offset
    ({}, 422),
    ("taken", 409),  # the time of another of her consults
])
def test_bad_reschedule_is_4xx_and_changes_nothing(client, consults, body, status):
    h = _h(consults["fran"])
    target, other = consults["mine"][0], consults["mine"][1]
    if body == "taken":
        body = {"start": other.start_at.isoformat()}
    before = (target.start_at, target.sequence)
    r = client.post(f"/api/v1/consultations/{target.id}/reschedule", json=body, headers=h)
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"]
    _db.session.expire_all()
    row = _db.session.get(Consultation, target.id)
    assert (row.start_at, row.sequence) == before


@pytest.fixture()
def cohort_world(db):
    fran = factories.user("facilitator", password=None)
    oli = factories.user("facilitator", password=None)
    c = fc.cohort()
    _db.session.add(CohortSession(cohort_id=c.id, kind="orientation", title="Orientation", facilitator_id=fran.id,
                                  starts_at=c.starts_at, ends_at=c.starts_at + timedelta(hours=2)))
    cleared = fc.cleared(c, name="Jo Park")
    applied = fc.applicant(c, name="Kim Lee")
    _db.session.commit()
    return {"fran": fran, "oli": oli, "cohort": c, "enrollments": [cleared, applied]}


def test_roster_has_people_and_seats_never_clinical_fields(client, cohort_world):
    c = cohort_world["cohort"]
    h = _h(cohort_world["fran"], ["read:roster"])
    r = client.get(f"/api/v1/cohorts/{c.id}/roster", headers=h)
    assert r.status_code == 200, r.get_json()
    items = r.get_json()["items"]
    assert [i["name"] for i in items] == ["Jo Park", "Kim Lee"]
    assert set(items[0]) == {"enrollment_id", "participant_id", "name", "email", "status", "seat", "applied_at"}
    assert not [k for i in items for k in i if any(word in k.lower() for word in CLINICAL)]
    assert "ETag" in r.headers
    # the facilitator of another team, or without the scope: refused
    assert client.get(f"/api/v1/cohorts/{c.id}/roster", headers=_h(cohort_world["oli"])).status_code == 404
    lacks = client.get(f"/api/v1/cohorts/{c.id}/roster", headers=_h(cohort_world["fran"], ["read:cohorts"]))
    assert lacks.status_code == 403 and lacks.get_json()["error"] == "This token lacks the scope read:roster."
    assert client.get("/api/v1/cohorts/999999/roster", headers=h).status_code == 404


def test_enrollments_and_team_cohorts(client, cohort_world):
    c = cohort_world["cohort"]
    h = _h(cohort_world["fran"], ["read:cohorts"])
    items, pages = _pages(client, "/api/v1/enrollments", h, cohort=c.id, limit=1)
    assert pages == 2 and [i["id"] for i in items] == [e.id for e in cohort_world["enrollments"]]
    assert not [k for i in items for k in i if any(word in k.lower() for word in CLINICAL)]
    missing = client.get("/api/v1/enrollments", headers=h)
    assert missing.status_code == 400 and "cohort" in missing.get_json()["errors"]
    assert client.get("/api/v1/enrollments", query_string={"cohort": c.id},
                      headers=_h(cohort_world["oli"])).status_code == 404
    mine, _ = _pages(client, "/api/v1/team/cohorts", h)
    assert [x["id"] for x in mine] == [c.id]
    assert _pages(client, "/api/v1/team/cohorts", _h(cohort_world["oli"]))[0] == []
    tag = client.get("/api/v1/team/cohorts", headers=h).headers["ETag"]
    assert client.get("/api/v1/team/cohorts", headers={**h, "If-None-Match": tag}).status_code == 304


def test_list_statements_do_not_grow_with_the_page(client, cohort_world):
    c = cohort_world["cohort"]
    for _ in range(6):
        fc.bare_enrollment(c)
    _db.session.commit()
    h = _h(cohort_world["fran"])
    client.get(f"/api/v1/cohorts/{c.id}/roster", headers=h)  # the token's last use is recorded once
    with counting() as few:
        assert client.get(f"/api/v1/cohorts/{c.id}/roster", query_string={"limit": 2}, headers=h).status_code == 200
    with counting() as many:
        assert client.get(f"/api/v1/cohorts/{c.id}/roster", query_string={"limit": 8}, headers=h).status_code == 200
    assert len(many) == len(few) <= 6, many


def test_finance_lists_answer_304_too(client, db):
    h = _h(factories.user("finance", password=None), ["read:finance"])
    for path in ("/api/v1/payments", "/api/v1/ledger-entries"):
        first = client.get(path, headers=h)
        assert first.status_code == 200 and first.get_json() == {"items": [], "next_cursor": None}
        r = client.get(path, headers={**h, "If-None-Match": first.headers["ETag"]})
        assert r.status_code == 304 and r.data == b""
        assert client.get(path, headers={**h, "If-None-Match": "*"}).status_code == 304
        assert client.get(path, headers={**h, "If-None-Match": 'W/"stale"'}).status_code == 200
