"""A consult booked with someone's email stays a guest record until that person confirms it
(issue #16, item 4): nothing about it reaches their history (the provider's consult safety
section, their export) until they follow the emailed "this was me" link, or book signed in. The
safety alert about the booking itself is raised at once either way."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from retreat.clinical import access as clinical_access
from retreat.consults import claims
from retreat.core.crypto import hash_token
from retreat.models import AuditEvent, Consultation, SafetyAlert
from retreat.privacy.export import export_participant_data
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_clearance as fcl
from tests.links import follow_link, open_link
from tests.unit.test_consult_support import around_the_clock_facilitator, claim_token
from tests.web.account_helpers import signed_in

YES = {"suicidality": "yes"}


def _start(now, hours=30):
    return (now + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


def _api_book(client, fac, email, now, hours=30):
    r = client.post("/api/v1/consultations", json={
        "start": _start(now, hours).isoformat(), "facilitator_id": fac.id, "name": "Mallory", "email": email,
        "timezone": "UTC", "answers": YES})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r


def _safety_consults(s):
    record = clinical_access.read(s.provider, s.enrollment, [clinical_access.CONSULT_SAFETY], ctx=None, now=s.now)
    return [c.consult_id for c in record.consults]


def test_an_anonymous_booking_with_someones_email_stays_apart_until_they_confirm(app, client, db):
    s = fcl.setup()
    fac = around_the_clock_facilitator()
    clearance_req = fcl.answers()
    from retreat.clinical import clearance
    clearance.submit(s.enrollment, s.participant, clearance_req, now=s.now)
    db.session.commit()
    r = _api_book(client, fac, s.participant.email, now_utc())
    consult = db.session.get(Consultation, r.get_json()["id"])
    token = claim_token(consult)
    assert token not in r.get_data(as_text=True)  # only the address's owner gets the link
    # The booking's own safety alert is raised, about the consult, not about the person.
    [alert] = db.session.scalars(select(SafetyAlert).where(SafetyAlert.consultation_id == consult.id)).all()
    assert alert.enrollment_id is None and alert.status == "open"
    # Nothing reaches the person's history: no participant, not in the provider's review, not in the export.
    assert consult.participant_id is None and consult.owner_confirmed_at is None
    assert _safety_consults(s) == []
    assert export_participant_data(s.participant, s.participant, ctx=None, now=s.now)["consultations"] == []

    # The link's page asks first (a mail scanner fetching it confirms nothing) ...
    page_url, page = follow_link(client, f"/consult/claim/{token}")
    assert page_url == f"/consult/booking/{consult.id}/claim"
    assert page.status_code == 200 and "Was this you?" in page.get_data(as_text=True)
    assert db.session.get(Consultation, consult.id).participant_id is None
    # ... a wrong or forged token is a clear 404 and changes nothing ...
    bad = client.get(f"/consult/claim/{token[:-2]}xx")
    assert bad.status_code == 404 and "not valid" in bad.get_data(as_text=True)
    assert client.get("/consult/claim/" + "x" * 600).status_code == 404
    assert client.post(f"/consult/claim/{token}").status_code == 405  # the emailed link only opens the page
    stranger = client.application.test_client()  # the page's address alone confirms nothing
    assert stranger.post(page_url).status_code == 400
    assert db.session.get(Consultation, consult.id).participant_id is None
    # ... and "yes, this was me" joins it to their history (once).
    done = client.post(page_url)
    assert done.status_code == 200 and "Added to your history" in done.get_data(as_text=True)
    db.session.expire_all()
    consult = db.session.get(Consultation, consult.id)
    assert consult.participant_id == s.participant.id and consult.owner_confirmed_at is not None
    assert consult.claim_token_hash == hash_token(token)
    assert _safety_consults(s) == [consult.id]
    [row] = export_participant_data(s.participant, s.participant, ctx=None, now=s.now)["consultations"]
    assert row["joined_history_at"] is not None
    again = client.get(open_link(client, f"/consult/claim/{token}"))
    assert again.status_code == 200 and "Already added" in again.get_data(as_text=True)
    assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "consult.owner_confirmed")).all()) == 1


def test_a_booking_made_signed_in_as_the_emails_owner_joins_at_once(app, db):
    fac = around_the_clock_facilitator()
    person = factories.user("participant", email="robin@example.com")
    other = factories.user("participant", email="sam@example.com")
    db.session.commit()
    c = signed_in(app, person)
    now = now_utc()

    def book_as(email, hours):
        r = c.post("/consult/details", data={
            "start": _start(now, hours).strftime("%Y-%m-%dT%H:%M:%SZ"), "facilitator": str(fac.id), "name": "Robin",
            "email": email, "timezone": "UTC"})
        assert r.status_code == 303, r.get_data(as_text=True)[:800]
        return db.session.scalar(select(Consultation).where(Consultation.guest_email == email)
                                 .order_by(Consultation.id.desc()).limit(1))

    own = book_as("robin@example.com", 30)
    assert own.participant_id == person.id and own.owner_confirmed_at is not None and own.claim_token_hash is None
    # Signed in, but with someone else's address: theirs to confirm, not the signed-in person's.
    theirs = book_as("sam@example.com", 32)
    assert theirs.participant_id is None and theirs.claim_token_hash and other.id != person.id
    assert claims.owner_for(None, "robin@example.com") is None
