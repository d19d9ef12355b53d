"""The integration journal: private to its author, shared entry by entry with the cohort's
facilitators, encrypted at rest, and never overwritten from a stale page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from retreat.cohorts.models import CohortSession
from retreat.integration import journal
from retreat.integration.journal_models import JournalEntry
from retreat.models import AuditEvent
from retreat.privacy import export as privacy_export
from retreat.privacy import key_rotation
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_clearance as fcl
from tests import factories_cohorts as fc
from tests.conftest import signed_in

SECRET = "PRIVATE-JOURNAL-9931 I dreamt of the lake again"


@pytest.fixture()
def s(db):
    s = fcl.setup()
    s.facilitator = factories.user("facilitator", password=None, name="Fran Facilitator")
    s.other_facilitator = factories.user("facilitator", password=None, name="Olga Other")
    # the cohort's team is the facilitator assigned to one of its sessions
    start = s.cohort.starts_at + timedelta(hours=2)
    db.session.add(CohortSession(cohort_id=s.cohort.id, kind="integration_circle", title="Circle 1", starts_at=start,
                                 ends_at=start + timedelta(hours=2), facilitator_id=s.facilitator.id))
    db.session.flush()
    return s


def _entry(s, text_=SECRET, **kw) -> JournalEntry:
    kw.setdefault("realm", "emotions")
    kw.setdefault("prompt_key", "emotions-parts")
    kw.setdefault("enrollment_id", s.enrollment.id)
    return journal.create(s.participant, text=text_, now=now_utc(), **kw)


def _events(action: str, entry_id=None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.action == action)
    if entry_id is not None:
        stmt = stmt.where(AuditEvent.object_id == str(entry_id))
    return list(__import__("retreat.extensions", fromlist=["db"]).db.session.scalars(stmt))


def test_participant_writes_edits_and_sees_entries_with_prompts(app, db, s):
    me = signed_in(app, s.participant)
    page = me.get("/me/journal")
    assert page.status_code == 200 and "Relationships" in page.get_data(as_text=True)
    assert "Which part of you showed up today?" in page.get_data(as_text=True)
    form = me.get("/me/journal/new?prompt=body-breath").get_data(as_text=True)
    assert 'selected value="body-breath"' in form and 'selected value="body"' in form
    r = me.post("/me/journal/new", data={"realm": "body", "prompt_key": "body-breath", "text": SECRET,
                                         "enrollment_id": str(s.enrollment.id)})
    assert r.status_code == 302
    entry = db.session.scalar(select(JournalEntry))
    assert (entry.participant_id, entry.realm, entry.prompt_key, entry.version) == (
        s.participant.id, "body", "body-breath", 1)
    assert entry.shared_at is None
    listing = me.get("/me/journal").get_data(as_text=True)
    assert SECRET in listing and "Private" in listing and "Take three slow breaths" in listing
    r = me.post(f"/me/journal/{entry.id}/edit", data={"realm": "body", "prompt_key": "", "text": SECRET + " (edited)",
                                                       "enrollment_id": "", "version": "1"})
    assert r.status_code == 302
    db.session.expire_all()
    assert entry.version == 2 and entry.prompt_key is None and entry.enrollment_id is None
    assert journal.open_entry(entry).text == SECRET + " (edited)"


@pytest.mark.parametrize("data,field", [
    ({"realm": "", "text": "hello"}, "Choose a realm."),
    ({"realm": "body", "text": "   "}, "Write something before saving."),
    ({"realm": "body", "prompt_key": "spirit-gratitude", "text": "x"}, "That prompt belongs to another realm."),
    ({"realm": "body", "prompt_key": "nope", "text": "x"}, "Choose one of the prompts, or none."),
    ({"realm": "body", "text": "x" * (journal.MAX_LENGTH + 1)}, "under 20,000 characters"),
])
def test_bad_entries_are_refused_with_a_clear_message_and_nothing_saved(app, db, s, data, field):
    r = signed_in(app, s.participant).post("/me/journal/new", data=data)
    assert r.status_code == 422 and field in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count(JournalEntry.id))) == 0


def test_an_entry_about_someone_elses_enrollment_is_refused(app, db, s):
    other = fc.applicant(s.cohort)
    r = signed_in(app, s.participant).post("/me/journal/new", data={"realm": "mind", "text": "x",
                                                                    "enrollment_id": str(other.id)})
    assert r.status_code == 422 and "Choose one of your retreats." in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count(JournalEntry.id))) == 0


def test_text_is_encrypted_at_rest_and_rotated_with_the_other_clinical_columns(app, db, s):
    _entry(s)
    raw = db.session.execute(text("SELECT text_enc FROM journal_entries")).scalar_one()
    assert "PRIVATE-JOURNAL" not in raw and raw.startswith("gAAAAA")
    assert (JournalEntry, "text_enc") in key_rotation.ENCRYPTED_COLUMNS
    counts = key_rotation.rotate_keys()
    assert counts["journal_entries.text_enc"] == 1
    db.session.expire_all()
    assert journal.open_entry(db.session.scalar(select(JournalEntry))).text == SECRET


def test_stale_edit_is_refused_and_both_versions_are_shown(app, db, s):
    entry = _entry(s)
    db.session.commit()
    tab_a, tab_b = signed_in(app, s.participant), signed_in(app, s.participant)
    assert tab_a.get(f"/me/journal/{entry.id}/edit").status_code == 200  # both tabs opened version 1
    r = tab_b.post(f"/me/journal/{entry.id}/edit", data={"realm": "emotions", "text": "Written in tab B",
                                                          "version": "1"})
    assert r.status_code == 302
    r = tab_a.post(f"/me/journal/{entry.id}/edit", data={"realm": "emotions", "text": "Written in tab A",
                                                          "version": "1"})
    body = r.get_data(as_text=True)
    assert r.status_code == 409 and "changed in another tab" in body
    assert "Written in tab B" in body and "Written in tab A" in body  # nothing lost, nothing overwritten
    assert 'name="version" type="hidden" value="2"' in body
    db.session.expire_all()
    assert journal.open_entry(entry).text == "Written in tab B" and entry.version == 2
    # a form without a version is stale by definition
    r = tab_a.post(f"/me/journal/{entry.id}/edit", data={"realm": "emotions", "text": "no version"})
    assert r.status_code == 409


def test_delete_needs_confirmation_and_a_current_version(app, db, s):
    entry = _entry(s)
    db.session.commit()
    me = signed_in(app, s.participant)
    confirm = me.get(f"/me/journal/{entry.id}/delete")
    assert confirm.status_code == 200 and SECRET in confirm.get_data(as_text=True)
    journal.update_entry(s.participant, entry, expected_version=1, realm="emotions", prompt_key=None,
                         text="changed meanwhile", enrollment_id=s.enrollment.id, now=now_utc())
    db.session.commit()
    r = me.post(f"/me/journal/{entry.id}/delete", data={"version": "1"})
    assert r.status_code == 302 and db.session.get(JournalEntry, entry.id) is not None  # stale: kept
    assert me.post(f"/me/journal/{entry.id}/delete", data={"version": "2"}).status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(func.count(JournalEntry.id))) == 0
    assert _events("journal.deleted", entry.id)


def test_another_participant_gets_404_everywhere(app, db, s):
    entry = _entry(s)
    db.session.commit()
    stranger = signed_in(app, factories.user("participant", password=None))
    for method, url in [("get", f"/me/journal/{entry.id}/edit"), ("post", f"/me/journal/{entry.id}/edit"),
                        ("get", f"/me/journal/{entry.id}/delete"), ("post", f"/me/journal/{entry.id}/delete"),
                        ("get", f"/me/journal/{entry.id}/share"), ("post", f"/me/journal/{entry.id}/share"),
                        ("post", f"/me/journal/{entry.id}/unshare")]:
        r = getattr(stranger, method)(url, data={"version": "1", "realm": "body", "text": "hijack",
                                                 "enrollment_id": str(s.enrollment.id)})
        assert r.status_code == 404, url
        assert SECRET not in r.get_data(as_text=True)
    assert SECRET not in stranger.get("/me/journal").get_data(as_text=True)
    db.session.expire_all()
    assert journal.open_entry(entry).text == SECRET and entry.shared_at is None


def test_facilitator_gets_403_for_an_unshared_entry_and_never_sees_its_text(app, db, s):
    entry = _entry(s)
    db.session.commit()
    fac = signed_in(app, s.facilitator)
    r = fac.get(f"/facilitator/journal/{entry.id}")
    assert r.status_code == 403 and SECRET not in r.get_data(as_text=True)
    assert _events("journal.denied", entry.id)
    pages = [f"/facilitator/cohorts/{s.cohort.id}/journal",
             f"/facilitator/cohorts/{s.cohort.id}/journal/{s.enrollment.id}",
             f"/facilitator/cohorts/{s.cohort.id}/roster?status=all", f"/facilitator/cohorts/{s.cohort.id}/outcomes",
             "/facilitator/outcomes", "/facilitator/"]
    for url in pages:
        resp = fac.get(url)
        assert resp.status_code in (200, 302), url
        assert SECRET not in resp.get_data(as_text=True), url
    r = fac.get(f"/facilitator/journal/{entry.id}", headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.is_json and SECRET not in r.get_data(as_text=True)
    assert not _events("journal.read")


def test_sharing_then_unsharing_one_entry(app, db, s):
    shared = _entry(s, "SHARED-ENTRY-1188 grateful for the group")
    private = _entry(s)
    db.session.commit()
    me = signed_in(app, s.participant)
    share_page = me.get(f"/me/journal/{shared.id}/share").get_data(as_text=True)
    assert "Fran Facilitator" in share_page and "Olga Other" not in share_page  # who will be able to read it
    assert me.post(f"/me/journal/{shared.id}/share", data={"enrollment_id": str(s.enrollment.id)}).status_code == 302
    fac = signed_in(app, s.facilitator)
    overview = fac.get(f"/facilitator/cohorts/{s.cohort.id}/journal").get_data(as_text=True)
    assert s.participant.name in overview and "SHARED-ENTRY" not in overview and SECRET not in overview
    page = fac.get(f"/facilitator/cohorts/{s.cohort.id}/journal/{s.enrollment.id}").get_data(as_text=True)
    assert "SHARED-ENTRY-1188" in page and SECRET not in page
    single = fac.get(f"/facilitator/journal/{shared.id}")
    assert single.status_code == 200 and "SHARED-ENTRY-1188" in single.get_data(as_text=True)
    assert fac.get(f"/facilitator/journal/{private.id}").status_code == 403
    reads = _events("journal.read", shared.id)
    assert len(reads) == 2 and all(e.actor_id == s.facilitator.id for e in reads)
    assert reads[0].details["participant_id"] == s.participant.id
    assert not any(SECRET in str(e.details) or "SHARED-ENTRY" in str(e.details)
                   for e in db.session.scalars(select(AuditEvent)))
    # a facilitator who is not on this cohort's team is refused, even for a shared entry
    other = signed_in(app, s.other_facilitator)
    assert other.get(f"/facilitator/journal/{shared.id}").status_code == 403
    assert other.get(f"/facilitator/cohorts/{s.cohort.id}/journal/{s.enrollment.id}").status_code == 403
    assert "SHARED-ENTRY" not in other.get(f"/facilitator/journal/{shared.id}").get_data(as_text=True)
    # unshare: private again
    assert me.post(f"/me/journal/{shared.id}/unshare").status_code == 302
    r = fac.get(f"/facilitator/journal/{shared.id}")
    assert r.status_code == 403 and "SHARED-ENTRY" not in r.get_data(as_text=True)
    assert "SHARED-ENTRY" not in fac.get(
        f"/facilitator/cohorts/{s.cohort.id}/journal/{s.enrollment.id}").get_data(as_text=True)
    assert _events("journal.shared", shared.id) and _events("journal.unshared", shared.id)


def test_a_shared_entry_cannot_be_moved_to_another_retreat_while_shared(app, db, s):
    second = fc.applicant(fc.cohort(), email=None)
    second.participant_id = s.participant.id
    db.session.flush()
    entry = _entry(s)
    journal.share(s.participant, entry, enrollment_id=s.enrollment.id, now=now_utc())
    db.session.commit()
    r = signed_in(app, s.participant).post(f"/me/journal/{entry.id}/edit", data={
        "realm": "emotions", "text": SECRET, "enrollment_id": str(second.id), "version": "1"})
    assert r.status_code == 422 and "Stop sharing it before" in r.get_data(as_text=True)
    db.session.expire_all()
    assert entry.enrollment_id == s.enrollment.id and entry.version == 1


@pytest.mark.parametrize("role", ["provider", "finance", "admin"])
def test_providers_finance_and_admins_never_read_journal_text(app, db, s, role):
    entry = _entry(s)
    journal.share(s.participant, entry, enrollment_id=s.enrollment.id, now=now_utc())
    db.session.commit()
    who = s.provider if role == "provider" else factories.user(role, password=None)
    c = signed_in(app, who)
    for url in [f"/facilitator/journal/{entry.id}", f"/facilitator/cohorts/{s.cohort.id}/journal",
                f"/facilitator/cohorts/{s.cohort.id}/journal/{s.enrollment.id}", "/me/journal",
                f"/me/journal/{entry.id}/edit"]:
        r = c.get(url)
        assert r.status_code == 403, (role, url)
        assert SECRET not in r.get_data(as_text=True)
    assert not _events("journal.read")


def test_export_and_the_participant_data_page_include_journal_and_scores(app, db, s):
    from retreat.clinical import outcomes

    _entry(s)
    outcomes.record(s.enrollment, "phq9", "post", [1] * 9, now=now_utc())
    db.session.commit()
    data = privacy_export.export_participant_data(s.participant, s.participant, ctx=None, now=now_utc())
    assert data["journal_entries"][0]["text"] == SECRET and data["journal_entries"][0]["realm"] == "Emotions"
    assert data["outcome_scores"][0]["total"] == 9 and data["outcome_scores"][0]["timepoint"] == "Right after"
    page = signed_in(app, s.participant).get("/me/data/export.html").get_data(as_text=True)
    assert SECRET in page and "Your integration journal" in page
