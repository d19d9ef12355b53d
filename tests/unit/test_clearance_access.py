"""The one clinical read path: who may read which section, an audit event for every read,
break-glass, the participant's export, encryption at rest and key rotation."""

import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from retreat.clinical import access as clinical_access
from retreat.clinical import clearance, clearance_status
from retreat.clinical.access import ANSWERS, DECISION, SCREENING, SHAREABLE, THREAD, AccessDenied
from retreat.config import check_production_safety, load_config
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed
from retreat.models import AuditEvent
from retreat.privacy import export as privacy_export
from retreat.privacy import key_rotation
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER
from tests.factories_cohorts import NOW

CTX = RequestContext(ip="203.0.113.9", request_id="req-42")
ALL = [ANSWERS, SCREENING, DECISION, THREAD]


@pytest.fixture()
def s(db):
    s = fcl.setup(now=NOW)
    clearance.submit(s.enrollment, s.participant, fcl.marked_answers(copd=True), now=NOW)
    return s


def events(db, action="clinical.read"):
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_provider_of_the_referred_org_reads_everything_and_each_section_is_audited(db, s):
    record = clinical_access.read(s.provider, s.enrollment, ALL, ctx=CTX, now=NOW)
    assert record.answers["medications"].startswith(MARKER) and record.answers["copd"] is True
    assert record.screening["level"] == "clearance_required"
    assert record.screening["clearance_required"][0]["key"] == "copd"
    evs = events(db)
    assert [e.details["section"] for e in evs] == ALL
    for e in evs:
        assert (e.actor_id, e.role, e.ip, e.request_id) == (s.provider.id, "provider", "203.0.113.9", "req-42")
        assert e.details["participant_id"] == s.participant.id and e.details["basis"] == "provider"
        assert e.object_type == "intake" and e.at == NOW
        assert MARKER not in json.dumps(e.details)


def test_participant_reads_own_record(db, s):
    record = clinical_access.read(s.participant, s.enrollment, [ANSWERS], ctx=CTX, now=NOW)
    assert record.answers["allergies"].startswith(MARKER)
    assert events(db)[-1].details["basis"] == "owner"


@pytest.mark.parametrize("role", ["facilitator", "finance", "admin"])
def test_staff_without_clinical_role_are_refused_and_it_is_logged(db, s, role):
    someone = factories.user(role, password=None)
    for section in ALL:
        with pytest.raises(AccessDenied):
            clinical_access.read(someone, s.enrollment, [section], ctx=CTX, now=NOW)
    assert events(db) == []
    denied = events(db, "clinical.denied")
    assert len(denied) == 4 and denied[0].actor_id == someone.id and denied[0].ip == "203.0.113.9"


def test_other_organisation_and_other_participants_are_refused(db, s):
    outsider = factories.user("provider", password=None)
    other_participant = fcl.another_applicant(s).participant
    for who in (outsider, other_participant, None):
        with pytest.raises(AccessDenied):
            clinical_access.read(who, s.enrollment, [ANSWERS], ctx=CTX, now=NOW)
    # The cohort's organisation before referral cannot read a draft either.
    s2 = fcl.setup(now=NOW, org=s.org)
    clearance.save_draft(s2.enrollment, s2.participant, {"medications": MARKER}, now=NOW)
    with pytest.raises(AccessDenied):
        clinical_access.read(s.provider, s2.enrollment, [ANSWERS], ctx=CTX, now=NOW)


def test_facilitators_see_only_conditions_marked_shareable(db, s):
    req = clearance_status.open_request(s.enrollment)
    fcl.decide(s, req, "cleared_with_conditions", conditions="Ground-floor room (mobility)", conditions_shareable=True,
               rationale=MARKER)
    private = fcl.setup(now=NOW, org=s.org)
    fcl.decide(private, fcl.submit(private), "cleared_with_conditions", conditions=MARKER)
    facilitator = factories.user("facilitator", password=None)
    shared = clinical_access.shareable_conditions(facilitator, [s.enrollment, private.enrollment], ctx=CTX, now=NOW)
    assert shared == {s.enrollment.id: "Ground-floor room (mobility)"}
    [ev] = events(db)
    assert ev.details["section"] == SHAREABLE and ev.details["basis"] == "team"
    with pytest.raises(AccessDenied):
        clinical_access.shareable_conditions(factories.user("finance", password=None), [s.enrollment], ctx=CTX,
                                             now=NOW)


def test_break_glass_needs_a_reason_and_is_highlighted(db, s):
    admin = factories.user("admin", password=None)
    with pytest.raises(ValidationFailed):
        clinical_access.break_glass(admin, s.enrollment, "because", ctx=CTX, now=NOW)
    assert events(db, "clinical.break_glass") == []
    with pytest.raises(AccessDenied):
        clinical_access.break_glass(factories.user("facilitator", password=None), s.enrollment,
                                    "Participant unreachable, safety concern raised", ctx=CTX, now=NOW)
    record = clinical_access.break_glass(admin, s.enrollment, "Participant unreachable after a safety alert",
                                         ctx=CTX, now=NOW)
    assert record.answers["medications"].startswith(MARKER)
    [bg] = events(db, "clinical.break_glass")
    assert bg.details["highlight"] is True and "unreachable" in bg.details["reason"]
    assert {e.details["basis"] for e in events(db)} == {"break_glass"}


def test_export_has_everything_about_the_participant_and_only_for_them(db, s):
    req = clearance_status.open_request(s.enrollment)
    clearance.request_more_info(req, s.provider, f"{MARKER} question", expected_version=1, now=NOW)
    clinical_access.read(s.provider, s.enrollment, [ANSWERS], ctx=CTX, now=NOW)
    data = privacy_export.export_participant_data(s.participant, s.participant, ctx=CTX, now=NOW)
    [enr] = data["medical_records"]
    assert enr["medical_intake"]["answers"]["medications"].startswith(MARKER)
    assert enr["clearance"][0]["messages"][0]["text"] == f"{MARKER} question"
    [application] = data["enrollments"]
    assert application["history"] and application["preparation_answers"]
    assert any(a["who"] == s.provider.email and a["section"] == ANSWERS for a in data["access_log"])
    json.dumps(data)  # JSON-able
    with pytest.raises(AccessDenied):
        privacy_export.export_participant_data(s.provider, s.participant, ctx=CTX, now=NOW)


# --------------------------------------------------------------------------------------------
# Encryption at rest and key rotation
# --------------------------------------------------------------------------------------------


def _raw_values(db) -> list[str]:
    values = []
    for model, column in key_rotation.ENCRYPTED_COLUMNS:
        values += [v for v in db.session.execute(text(f"SELECT {column} FROM {model.__tablename__}")).scalars() if v]
    return values


def _fill_every_column(s):
    req = clearance_status.open_request(s.enrollment)
    clearance.request_more_info(req, s.provider, f"{MARKER} question", expected_version=1, now=NOW)
    clearance.submit(s.enrollment, s.participant, fcl.marked_answers(glaucoma=True), now=NOW)
    fcl.decide(s, req, "cleared_with_conditions", conditions=f"{MARKER} conditions", rationale=f"{MARKER} rationale",
               participant_note=f"{MARKER} note", now=NOW + timedelta(hours=1))


def test_raw_columns_hold_no_plaintext(db, s):
    _fill_every_column(s)
    raw = _raw_values(db)
    assert len(raw) == 8  # intake 2, clearance 3, info 1, outcome baselines 2
    for value in raw:
        assert MARKER not in value and "glaucoma" not in value and value.startswith("gAAAAA")


def test_new_key_and_rotation_keep_every_record_readable(app, db, s, monkeypatch):
    _fill_every_column(s)
    old_key = app.config["CLINICAL_DATA_KEYS"]
    before = _raw_values(db)
    new_key = Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", f"{new_key},{old_key}")

    def readable():
        db.session.expire_all()
        record = clinical_access.read(s.participant, s.enrollment, ALL, ctx=CTX, now=NOW)
        rr = record.requests[0]
        return (record.answers["medications"], rr.conditions, rr.rationale, rr.participant_note,
                rr.messages[0]["body"], record.screening["absolute"][0]["key"])

    expected = (f"{MARKER} medications", f"{MARKER} conditions", f"{MARKER} rationale", f"{MARKER} note",
                f"{MARKER} question", "glaucoma")
    assert readable() == expected  # old records, new key in front
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "8 values" in result.output
    after = _raw_values(db)
    assert set(after).isdisjoint(before)
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", new_key)  # the old key is retired
    assert readable() == expected
    only_new = Fernet(new_key.encode())
    for token in after:
        only_new.decrypt(token.encode())
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "keys.rotated"))


def test_production_requires_clinical_data_keys(monkeypatch):
    strong = {"ENV_NAME": "production", "SECRET_KEY": "Vb3q9ZpL2xT7mK4wN8cR1yH6jD5sF0gA-uE_iO",
              "SECRET_KEY_GENERATED": False, "STRIPE_API_BASE": "https://api.stripe.com",
              "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_PUBLISHABLE_KEY": "pk_live_x", "METRICS_ENABLED": False}
    with pytest.raises(RuntimeError, match="CLINICAL_DATA_KEYS"):
        check_production_safety({**strong, "CLINICAL_DATA_KEYS": ""})
    check_production_safety({**strong, "CLINICAL_DATA_KEYS": Fernet.generate_key().decode()})
    monkeypatch.delenv("CLINICAL_DATA_KEYS", raising=False)
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", "older-name")
    assert load_config()["CLINICAL_DATA_KEYS"] == "older-name"
    monkeypatch.setenv("CLINICAL_DATA_KEYS", "newer-name")
    assert load_config()["CLINICAL_DATA_KEYS"] == "newer-name"
