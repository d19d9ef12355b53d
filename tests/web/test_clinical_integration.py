"""Consults, cohorts and medical clearance joined: consult safety alerts, consult facts on the
provider's request page, the roster's real clearance statuses, and key rotation of consult columns."""

from datetime import timedelta

from cryptography.fernet import Fernet
from flask import render_template
from sqlalchemy import event, select, text

from retreat.clinical import access as clinical_access
from retreat.clinical import clearance, roster, safety
from retreat.clinical.models import SafetyAlert
from retreat.consults import booking as bookings
from retreat.consults import outcomes as consult_outcomes
from retreat.consults import prescreen
from retreat.extensions import db as _db
from retreat.models import AuditEvent, OutboxMessage
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER
from tests.unit.test_consult_support import around_the_clock_facilitator, confirm_as_owner

SAFETY_ANSWERS = {"suicidality": "yes", "pregnancy": "unsure", "psychosis": "no"}


def _book(now, *, email="grace@example.com", answers=None, hours=30, facilitator=None, **kw):
    start = (now + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    return bookings.book(start=start, facilitator_id=facilitator.id if facilitator else None, name=kw.pop(
        "name", "Grace Guest"), email=email, phone="+1 303 555 0100", tz="UTC",
        reason=kw.pop("reason", f"{MARKER} reason"), heard_from=None, answers=answers or {},
        base_url="http://localhost", now=now).consult


def test_consult_reporting_suicidal_ideation_alerts_the_facilitator_at_once(app, db):
    fac = around_the_clock_facilitator()
    now = clinical_now()
    calm = _book(now, email="calm@example.com", answers={"suicidality": "no", "pregnancy": "yes"})
    assert calm.flagged and db.session.scalar(select(SafetyAlert)) is None  # flagged, but no safety signal
    c = _book(now, answers=SAFETY_ANSWERS, hours=32, name="Robin Risk")
    alert = db.session.scalar(select(SafetyAlert))
    assert alert.consultation_id == c.id and alert.status == "open" and alert.enrollment_id is None
    mail = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template == "safety_alert"))
    assert mail.recipient_user_id == fac.id and mail.due_at == now
    for ext in ("txt", "html"):
        body = render_template(f"emails/safety_alert.{ext}", **dict(mail.context, practice_name="P", subject="s"))
        assert "Safety review needed" in body and "free consult" in body
        assert "ending your life" not in body and "Robin" not in body and MARKER not in body
    raised = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "safety.alert_raised"))
    assert raised.details["consultation_id"] == c.id and "suicid" not in str(raised.details)
    # "Not sure" is not ruled out either: another alert for another consult.
    _book(now, email="unsure@example.com", answers={"suicidality": "unsure"}, hours=34)
    assert len(db.session.scalars(select(SafetyAlert)).all()) == 2
    db.session.commit()

    client = fcl.signed_in(app, fac)
    page = client.get("/facilitator/safety-alerts").get_data(as_text=True)
    assert "Safety review needed" in page and "Robin Risk" in page and "free consult pre-screen" in page
    assert MARKER not in page and "ending your life" not in page
    r = client.post(f"/facilitator/safety-alerts/{alert.id}/acknowledge")
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(SafetyAlert, alert.id).status == "acknowledged"
    # Providers' dashboards do not list consult alerts (no organisation is involved).
    assert safety.open_alerts(organization_id=factories.provider_org().id) == []


def clinical_now():
    from retreat.timeutil import now_utc

    return now_utc()


def _consult_world(db):
    s = fcl.setup()
    fac = around_the_clock_facilitator()
    req = clearance.submit(s.enrollment, s.participant, fcl.answers(), now=s.now).request
    c = confirm_as_owner(_book(s.now, email=s.participant.email, answers=SAFETY_ANSWERS, facilitator=fac), s.now)
    consult_outcomes.record_outcome(c, facilitator=fac, outcome="completed", recommended_cohort="Autumn group",
                            notes=f"{MARKER} outcome notes", now=s.now + timedelta(days=2))
    db.session.commit()
    return s, fac, req, c


def test_provider_sees_the_participants_consult_safety_facts_audited(app, db):
    s, _fac, req, c = _consult_world(db)
    client = fcl.signed_in(app, s.provider)
    page = client.get(f"/provider/requests/{req.id}").get_data(as_text=True)
    assert "No consult notes are shared with providers yet" not in page
    assert "Consult notes relevant to safety" in page and "pre-screen flagged: <strong>yes</strong>" in page
    assert "thoughts of ending your life" in page and "pregnant" in page
    assert "schizophrenia" not in page  # answered "no": not a matched contraindication
    assert MARKER not in page  # the reason and the outcome notes are not shared
    reads = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "clinical.read",
                                                        AuditEvent.actor_id == s.provider.id)).all()
    consult_reads = [e for e in reads if e.details["section"] == clinical_access.CONSULT_SAFETY]
    assert len(consult_reads) == 1 and consult_reads[0].details["consultation_ids"] == [c.id]

    # A provider of another organisation, and facilitators, are refused the section.
    outsider = factories.user("provider", password=None)
    facilitator = factories.user("facilitator", password=None)
    for who in (outsider, facilitator):
        try:
            clinical_access.read(who, s.enrollment, [clinical_access.CONSULT_SAFETY], ctx=None, now=s.now)
        except clinical_access.AccessDenied:
            pass
        else:
            raise AssertionError(f"{who.role} read consult safety facts")


def test_roster_shows_real_clearance_status_and_shareable_conditions_in_flat_queries(app, db):
    s = fcl.setup()
    facilitator = factories.user("facilitator", password=None)
    fcl.decide(s, fcl.submit(s), "cleared_with_conditions", conditions="Ground-floor room (mobility)",
               conditions_shareable=True, rationale=f"{MARKER} rationale")
    pending = fcl.another_applicant(s)
    clearance.submit(pending, pending.participant, fcl.marked_answers(), now=s.now)
    draft = fcl.another_applicant(s)
    clearance.save_draft(draft, draft.participant, fcl.marked_answers(), now=s.now)
    private = fcl.another_applicant(s)
    preq = clearance.submit(private, private.participant, fcl.answers(), now=s.now).request
    fcl.decide(s, preq, "cleared_with_conditions", conditions=f"{MARKER} private condition")
    db.session.commit()

    rows = {r.enrollment.id: r for r in roster.roster(s.cohort, status_filter="all", viewer=facilitator,
                                                          now=s.now)}
    assert (rows[s.enrollment.id].intake, rows[s.enrollment.id].clearance) == ("Submitted", "Cleared with conditions")
    assert rows[s.enrollment.id].shareable_conditions == "Ground-floor room (mobility)"
    assert rows[pending.id].clearance == "In medical review"
    assert (rows[draft.id].intake, rows[draft.id].clearance) == ("In progress", "Intake in progress")
    assert rows[private.id].clearance == "Cleared with conditions" and rows[private.id].shareable_conditions == ""

    page = fcl.signed_in(app, facilitator).get(f"/facilitator/cohorts/{s.cohort.id}/roster?status=all")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ground-floor room (mobility)" in body and "In medical review" in body
    assert MARKER not in body and "glaucoma" not in body.lower()

    def count(n_extra):
        for _ in range(n_extra):
            e = fcl.another_applicant(s)
            r = clearance.submit(e, e.participant, fcl.answers(), now=s.now).request
            fcl.decide(s, r, "cleared_with_conditions", conditions="Vegetarian meals", conditions_shareable=True)
        db.session.flush()
        db.session.expire_all()
        statements = []

        def log(*args):
            statements.append(args[2])

        engine = _db.engine
        event.listen(engine, "before_cursor_execute", log)
        try:
            roster.roster(s.cohort, status_filter="all", viewer=facilitator, now=s.now)
        finally:
            event.remove(engine, "before_cursor_execute", log)
        return len([q for q in statements if "clearance_requests" in q or "intakes" in q])

    assert count(0) == count(5)  # clearance statuses load in a fixed number of queries


def test_key_rotation_re_encrypts_consults(app, db, monkeypatch):
    s, _fac, _req, c = _consult_world(db)
    old_key = app.config["CLINICAL_DATA_KEYS"]
    columns = ("reason_encrypted", "answers_encrypted", "outcome_notes_encrypted")

    def raw():
        return db.session.execute(text(f"SELECT {', '.join(columns)} FROM consultations WHERE id = :i"),
                                  {"i": c.id}).one()

    before = raw()
    new_key = Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", f"{new_key},{old_key}")
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    after = raw()
    assert all(before) and all(a != b for a, b in zip(after, before, strict=True))
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", new_key)  # the old key is retired
    db.session.expire_all()
    assert prescreen.consult_reason(c) == f"{MARKER} reason"
    assert prescreen.consult_answers(c) == SAFETY_ANSWERS
    assert prescreen.consult_outcome_notes(c) == f"{MARKER} outcome notes"
    record = clinical_access.read(s.provider, s.enrollment, [clinical_access.CONSULT_SAFETY], ctx=None, now=s.now)
    assert record.consults[0].flagged and len(record.consults[0].matched) == 2
