"""Sweeps over every clinical URL: a provider of another organisation and other participants get
403/404 everywhere and change nothing (IDOR); facilitators and finance never see a marker string
planted in the intake, the thread, the decision and the participant's consult (reason, answers,
outcome notes) on any page they can reach; emails never do."""

import json
import re
import uuid
from datetime import timedelta

import pytest
from flask import render_template
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter

from retreat.accounts import api_tokens
from retreat.clinical import clearance
from retreat.clinical.dosing_models import DosingEntry, DosingRecord, EntryKind
from retreat.clinical.models import ClearanceRequest, InfoRequest, Intake, SafetyAlert
from retreat.cohorts.models import Cohort, CohortSession, Enrollment, SessionKind
from retreat.consults import booking as bookings
from retreat.consults import outcomes as consult_outcomes
from retreat.core.crypto import encrypt_field
from retreat.integration import journal
from retreat.models import AuditEvent, Consultation, OutboxMessage
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER
from tests.unit.test_consult_support import around_the_clock_facilitator, confirm_as_owner

CLINICAL_PREFIXES = ("/provider/", "/me/", "/api/v1/clearance", "/admin/break-glass", "/facilitator/")
SKIP_ENDPOINTS = {"static", "account.logout"}
# Word arguments of clinical routes and every value they take: each dosing entry kind
# (/provider/dosing/<session>/people/<enrollment>/<kind>: check-in, override, vitals, dose, ...).
WORD_ARGS = {"kind": sorted(k.value for k in EntryKind)}


@pytest.fixture()
def world(db):
    """Organisation A's records, full of the marker, in every state."""
    s = fcl.setup()
    facilitator = factories.user("facilitator", password=None)
    # V: safety alert, thread, resubmission, decided with private conditions and a rationale.
    clearance.save_draft(s.enrollment, s.participant, fcl.marked_answers(phq9_9=2), now=s.now)
    v = clearance.submit(s.enrollment, s.participant, fcl.marked_answers(phq9_9=2, glaucoma=True), now=s.now).request
    clearance.request_more_info(v, s.provider, f"{MARKER} question", expected_version=v.version, now=s.now)
    clearance.reply(v, s.participant, f"{MARKER} reply", now=s.now)
    clearance.submit(s.enrollment, s.participant, fcl.marked_answers(glaucoma=True), now=s.now)
    fcl.decide(s, v, "cleared_with_conditions", conditions=f"{MARKER} private condition",
               rationale=f"{MARKER} rationale for clearing despite glaucoma", participant_note=f"{MARKER} note")
    # W: open request.  X: draft only.  Y: cleared with a shareable accommodation.
    w = fcl.another_applicant(s)
    clearance.submit(w, w.participant, fcl.marked_answers(), now=s.now)
    x = fcl.another_applicant(s)
    clearance.save_draft(x, x.participant, fcl.marked_answers(), now=s.now)
    y = fcl.another_applicant(s)
    yreq = clearance.submit(y, y.participant, fcl.answers(), now=s.now).request
    fcl.decide(s, yreq, "cleared_with_conditions", conditions="Ground-floor room (mobility)", conditions_shareable=True)
    # V's participant had a free consult: the marker in its reason, answers and outcome notes.
    consult_facilitator = around_the_clock_facilitator()
    c = bookings.book(start=(s.now + timedelta(hours=30)).replace(minute=0, second=0, microsecond=0),
                      facilitator_id=consult_facilitator.id, name=s.participant.name, email=s.participant.email,
                      phone=None, tz="UTC", reason=f"{MARKER} consult reason", heard_from=None,
                      answers={"suicidality": "yes", "pressure_conditions": "yes"}, base_url="http://localhost",
                      now=s.now).consult
    c = confirm_as_owner(c, s.now)  # the participant said "this was me"
    c.answers_encrypted = encrypt_field(json.dumps({"suicidality": "yes", "pressure_conditions": "yes",
                                                    "note": f"{MARKER} consult answer"}))
    consult_outcomes.record_outcome(c, facilitator=consult_facilitator, outcome="completed", recommended_cohort=None,
                            notes=f"{MARKER} consult notes", now=s.now + timedelta(days=2))
    s.consult, s.consult_facilitator = c, consult_facilitator
    journal.create(s.participant, realm="body", prompt_key=None, text=f"{MARKER} private journal",  # never shared
                   enrollment_id=s.enrollment.id, now=s.now)
    # A dosing day of V: an observation full of the marker (provider-only; never on the team's view).
    dosing_session = CohortSession(cohort=s.cohort, kind=SessionKind.DOSING, title="Dosing day 1",
                                   starts_at=s.cohort.starts_at + timedelta(days=1),
                                   ends_at=s.cohort.starts_at + timedelta(days=1, hours=4))
    db.session.add(dosing_session)
    db.session.flush()
    rec = DosingRecord(session_id=dosing_session.id, enrollment_id=s.enrollment.id, state="in_session", version=2)
    db.session.add(rec)
    db.session.flush()
    db.session.add(DosingEntry(record_id=rec.id, kind="check", idempotency_key=str(uuid.uuid4()), version_after=2,
                               body_enc=encrypt_field(json.dumps({"observation": f"{MARKER} dosing observation"})),
                               actor_id=s.provider.id, at=s.now, recorded_at=s.now))
    db.session.commit()
    return s, facilitator


def max_id(db) -> int:
    models = (Enrollment, Intake, ClearanceRequest, InfoRequest, SafetyAlert, Cohort, Consultation, CohortSession)
    return max(db.session.scalar(select(func.max(m.id))) or 0 for m in models) + 1


def clinical_urls(app, db, methods=("GET",)):
    """Every clinical route, with every id that exists (and one that does not)."""
    adapter = app.url_map.bind("localhost")
    urls = []
    top = max_id(db)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS or not (set(methods) & rule.methods):
            continue
        if not rule.rule.startswith(CLINICAL_PREFIXES):
            continue
        args = sorted(rule.arguments)
        words = [a for a in args if not isinstance(rule._converters[a], IntegerConverter)]
        if any(a not in WORD_ARGS for a in words):
            continue
        if not args:
            urls.append((rule.endpoint, adapter.build(rule.endpoint, {})))
        else:
            for i in range(1, top + 1):
                for w in (range(len(WORD_ARGS[words[0]])) if words else [0]):  # every kind of dosing entry
                    values = {a: (WORD_ARGS[a][w] if a in words else i) for a in args}
                    urls.append((rule.endpoint, adapter.build(rule.endpoint, values)))
    return urls


def all_get_urls(app, db):
    """Every GET page of the whole app a signed-in person could try, with every id."""
    adapter = app.url_map.bind("localhost")
    top = max_id(db)
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS or "GET" not in rule.methods:
            continue
        args = sorted(rule.arguments)
        if not all(isinstance(rule._converters[a], IntegerConverter) for a in args):
            continue
        ids = [None] if not args else range(1, top + 1)
        for i in ids:
            out.append(adapter.build(rule.endpoint, {a: i for a in args}))
    return out


def snapshot(db):
    db.session.expire_all()
    reqs = [(r.id, r.status, r.decision, r.version, r.decided_by_id) for r in db.session.scalars(
        select(ClearanceRequest).order_by(ClearanceRequest.id))]
    intakes = [(i.id, i.status, i.answers_enc, i.submissions) for i in db.session.scalars(select(Intake))]
    alerts = [(a.id, a.status) for a in db.session.scalars(select(SafetyAlert))]
    enrollments = [(e.id, e.status) for e in db.session.scalars(select(Enrollment))]
    messages = db.session.scalar(select(func.count()).select_from(InfoRequest))
    dosing = [(r.id, r.state, r.version) for r in db.session.scalars(select(DosingRecord).order_by(DosingRecord.id))]
    entries = db.session.scalar(select(func.count()).select_from(DosingEntry))
    return reqs, intakes, alerts, enrollments, messages, dosing, entries


def test_provider_of_another_organisation_gets_nothing_anywhere(app, db, world):
    s, _ = world
    outsider = factories.user("provider", password=None)
    token = {"Authorization": f"Bearer {api_tokens.create_token(outsider, name='sweep')[1]}"}
    db.session.commit()
    c = fcl.signed_in(app, outsider)
    before = snapshot(db)
    gets = clinical_urls(app, db)
    assert len(gets) > 30
    for endpoint, url in gets:
        r = c.get(url, headers=token if url.startswith("/api/") else None)
        body = r.get_data().decode('utf-8', 'replace')
        if endpoint in ("provider.dashboard", "api_clearance.list_requests", "provider.outcomes_index",
                        "provider.dosing_index", "provider.dosing_settings"):
            assert r.status_code == 200, url  # their own (empty) queue
        elif endpoint.startswith("provider.dosing"):
            assert r.status_code == 404, (url, r.status_code)  # another organisation's dosing day does not exist
        else:
            assert r.status_code in (403, 404), (url, r.status_code)
        assert MARKER not in body and s.participant.name not in body, url
    posts = clinical_urls(app, db, methods=("POST",))
    form = {"decision": "cleared", "attestation_name": outsider.name, "version": "2", "message": "hello",
            "conditions": "x", "reason": "I would like to read this record please, it is urgent", "enrollment_id": "1",
            "phq9_9": "0", "action": "submit", "confirm": "y"}
    for _endpoint, url in posts:
        if _endpoint == "provider.dosing_settings":
            continue  # their own organisation's settings (the form is refused as incomplete anyway)
        r = c.post(url, data=form)
        assert r.status_code in ((404,) if _endpoint.startswith("provider.dosing") else (403, 404)), (url, r.status_code)
    assert {e for e, _ in posts} >= {"provider.dosing_write", "provider.dosing_assign", "provider.dosing_unassign"}
    assert {u.rsplit("/", 1)[1] for e, u in posts if e == "provider.dosing_write"} >= {"check_in", "override",
                                                                                        "dose", "discharge"}
    assert snapshot(db) == before
    denied = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "clinical.denied",
                                                         AuditEvent.actor_id == outsider.id)).all()
    assert denied  # refusals of existing records are logged
    assert not db.session.scalars(select(AuditEvent).where(AuditEvent.action == "clinical.read",
                                                           AuditEvent.actor_id == outsider.id)).all()


def test_another_participant_gets_nothing(app, db, world):
    s, _ = world
    stranger = fcl.another_applicant(fcl.setup())
    db.session.commit()
    c = fcl.signed_in(app, stranger.participant)
    before = snapshot(db)
    def is_own(url: str) -> bool:
        m = re.match(r"^/me/enrollments/(\d+)(?:/|$)", url)
        return bool(m) and int(m.group(1)) == stranger.id

    for _endpoint, url in clinical_urls(app, db):
        r = c.get(url)
        assert MARKER not in r.get_data().decode('utf-8', 'replace'), url
        if url.startswith("/me/enrollments/") and not is_own(url):
            assert r.status_code == 404, url
        elif url.startswith("/api/"):
            assert r.status_code == 401, url  # the API takes staff tokens only
        elif not url.startswith("/me/"):
            assert r.status_code == 403, url
    for _endpoint, url in clinical_urls(app, db, methods=("POST",)):
        if is_own(url) or not url.startswith("/me/enrollments/"):
            continue
        r = c.post(url, data={"action": "submit", "message": "hi", **fcl.answers()})
        assert r.status_code == 404, url
    assert snapshot(db) == before


@pytest.mark.parametrize("role", ["facilitator", "finance"])
def test_facilitators_and_finance_never_see_clinical_text(app, db, world, role):
    s, facilitator = world
    user = facilitator if role == "facilitator" else factories.user("finance", password=None)
    db.session.commit()
    c = fcl.signed_in(app, user)
    seen_ok = 0
    for url in all_get_urls(app, db):
        r = c.get(url)
        assert r.status_code != 500, url
        body = r.get_data().decode('utf-8', 'replace')
        assert MARKER not in body, (role, url)
        assert "glaucoma" not in body.lower(), (role, url)
        if r.status_code == 200:
            seen_ok += 1
    assert seen_ok >= 3
    if role == "facilitator":
        page = c.get(f"/facilitator/cohorts/{s.cohort.id}/clearance").get_data(as_text=True)
        assert "Ground-floor room (mobility)" in page and "Cleared with conditions" in page
        assert "Safety review needed" in c.get("/facilitator/safety-alerts").get_data(as_text=True)


def test_consult_marker_stays_off_rosters_and_cohort_pages_even_for_the_consults_facilitator(app, db, world):
    s, _ = world
    c = fcl.signed_in(app, s.consult_facilitator)
    cohort_pages = [u for u in all_get_urls(app, db) if u.startswith(("/facilitator/cohorts", "/facilitator/clearance",
                                                                         "/facilitator/safety-alerts", "/finance"))]
    assert any("/roster" in u for u in cohort_pages)
    for url in cohort_pages:
        r = c.get(url)
        assert r.status_code != 500, url
        assert MARKER not in r.get_data().decode('utf-8', 'replace'), url
    roster = c.get(f"/facilitator/cohorts/{s.cohort.id}/roster?status=all").get_data(as_text=True)
    assert s.participant.name in roster and "Cleared with conditions" in roster
    assert "Ground-floor room (mobility)" in roster  # shareable, and only that


def test_provider_sees_consult_safety_facts_but_no_consult_free_text(app, db, world):
    s, _ = world
    req = db.session.scalar(select(ClearanceRequest).where(ClearanceRequest.enrollment_id == s.enrollment.id)
                            .order_by(ClearanceRequest.id.desc()))
    page = fcl.signed_in(app, s.provider).get(f"/provider/requests/{req.id}").get_data(as_text=True)
    section = page.split('id="consult-heading"', 1)[1].split("</section>", 1)[0]
    assert "flagged: <strong>yes</strong>" in section and "ending your life" in section and "glaucoma" in section
    assert MARKER not in section


def test_no_email_carries_clinical_text(app, db, world):
    messages = db.session.scalars(select(OutboxMessage)).all()
    templates = {m.template for m in messages}
    assert {"clearance_new_request", "clearance_info_requested", "clearance_updated", "clearance_decided",
            "safety_alert"} <= templates
    for m in messages:
        ctx = dict(m.context, practice_name="Practice", subject="s")
        for ext in ("txt", "html"):
            body = render_template(f"emails/{m.template}.{ext}", **ctx)
            assert MARKER not in body and "glaucoma" not in body.lower(), m.template
