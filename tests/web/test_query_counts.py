"""Query discipline beyond finance (see test_finance_query_counts.py for the finance pages): the
facilitator roster, the provider's clearance queue and the participant portal cost the same number
of SQL statements with 10 and with 1,000 rows (no query per row, N+1)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from retreat.core.crypto import encrypt_field
from retreat.extensions import db as _db
from retreat.models import (
    ChecklistItem,
    ClearanceRequest,
    ConsentDocument,
    ConsentSignature,
    Enrollment,
    Intake,
    JournalEntry,
    LedgerEntry,
    Payment,
    RosterNote,
    User,
)
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


def _world(n: int, *, fac: User, doc: ConsentDocument) -> dict:
    """A cohort with ``n`` enrollments in every roster state, an organisation whose queue holds a
    fifth of them, and one participant with ``n`` payments (and ledger entries) and ``n`` journal entries."""
    now = now_utc()
    org = factories.provider_org()
    provider = factories.user("provider", org=org, password=None)
    c = fc.cohort(capacity=n + 1, provider_organization_id=org.id, starts_at=now + timedelta(days=60))
    base = factories.n() * 100000
    people = [User(email=f"qc{base + i}@example.com", name=f"Person {base + i}", role="participant",
                   tz="America/Denver") for i in range(n)]
    _db.session.add_all(people)
    _db.session.flush()
    kinds = ("confirmed", "waitlist", "pending", "cleared", "applied")
    enrs = []
    for i, p in enumerate(people):
        kind = kinds[i % 5]
        e = Enrollment(cohort_id=c.id, participant_id=p.id, applied_at=now - timedelta(minutes=i), holds_taken=0,
                       offers_made=0, motivation="", lodging="Cabin" if i % 3 else "", seat="none",
                       status={"confirmed": "deposit_paid", "pending": "clearance_pending",
                               "cleared": "cleared"}.get(kind, "applied"))
        if kind == "confirmed":
            e.seat, e.seat_confirmed_at = "confirmed", now
        if kind == "waitlist":
            e.waitlist_position, e.waitlisted_at = i, now
        enrs.append(e)
    _db.session.add_all(enrs)
    _db.session.flush()
    c.seats_taken = sum(1 for e in enrs if e.seat == "confirmed")
    _db.session.add_all([ChecklistItem(enrollment_id=e.id, key=key, due_at=now + timedelta(days=5),
                                       completed_at=now if e.id % 2 else None)
                         for e in enrs for key in ("intention", "ride_home")])
    _db.session.add_all([ConsentSignature(enrollment_id=e.id, document_id=doc.id, signer_id=e.participant_id,
                                          typed_name="x", signed_at=now, document_sha256=doc.sha256)
                         for e in enrs if e.seat == "confirmed"])
    _db.session.add_all([RosterNote(enrollment_id=e.id, author_id=fac.id, body="Arrives late") for e in enrs[::7]])
    referred = [e for e in enrs if e.status in ("clearance_pending", "cleared")]
    intakes = [Intake(enrollment_id=e.id, participant_id=e.participant_id, status="submitted", submitted_at=now,
                      screening_level="standard", submissions=1) for e in referred]
    _db.session.add_all(intakes)
    _db.session.flush()
    _db.session.add_all([ClearanceRequest(
        enrollment_id=e.id, intake_id=it.id, organization_id=org.id, due_at=now + timedelta(days=1 + k % 4),
        status="pending" if e.status == "clearance_pending" else "decided",
        decision=None if e.status == "clearance_pending" else "cleared",
        decided_at=None if e.status == "clearance_pending" else now, valid_until=now + timedelta(days=120),
        decided_by_id=None if e.status == "clearance_pending" else provider.id)
        for k, (e, it) in enumerate(zip(referred, intakes, strict=True))])

    # The participant whose portal is measured: a confirmed seat here, an application elsewhere.
    me = factories.user("participant", password=None)
    mine = Enrollment(cohort_id=c.id, participant_id=me.id, status="deposit_paid", seat="confirmed",
                      seat_confirmed_at=now, applied_at=now, holds_taken=1, offers_made=0, motivation="", lodging="")
    _db.session.add(mine)
    c.seats_taken += 1
    fc.applicant(fc.cohort(starts_at=now + timedelta(days=90)), now=now, email=f"other{base}@example.com")
    _db.session.flush()
    _db.session.add(Enrollment(cohort_id=fc.cohort(starts_at=now + timedelta(days=120)).id, participant_id=me.id,
                               status="applied", seat="none", applied_at=now, holds_taken=0, offers_made=0,
                               motivation="", lodging=""))
    pays = [Payment(enrollment_id=mine.id, kind="installment" if i else "deposit", attempt=i + 1, amount_minor=100,
                    currency="USD", status="succeeded", idempotency_key=f"qc-{mine.id}-{i}",
                    stripe_payment_intent_id=f"pi_qc_{mine.id}_{i}", succeeded_at=now - timedelta(hours=i))
            for i in range(n)]
    _db.session.add_all(pays)
    _db.session.flush()
    _db.session.add_all([LedgerEntry(enrollment_id=mine.id, entry_type="charge", amount_minor=100, currency="USD",
                                     stripe_object_id=p.stripe_payment_intent_id, payment_id=p.id,
                                     created_at=now - timedelta(hours=i)) for i, p in enumerate(pays)])
    token = encrypt_field("A quiet morning; the parts felt heard.")
    _db.session.add_all([JournalEntry(participant_id=me.id, enrollment_id=mine.id if i % 2 else None,
                                      realm="self", text_enc=token, created_at=now - timedelta(hours=i),
                                      updated_at=now - timedelta(hours=i)) for i in range(n)])
    _db.session.flush()
    return {"cohort": c, "provider": provider, "me": me, "mine": mine}


def _pages(w: dict, fac: User) -> list[tuple[User, str]]:
    c, mine = w["cohort"].id, w["mine"].id
    return [(fac, f"/facilitator/cohorts/{c}/roster"), (fac, f"/facilitator/cohorts/{c}/roster?status=all"),
            (fac, f"/facilitator/cohorts/{c}/roster?status=waitlist"), (fac, f"/facilitator/cohorts/{c}/roster.csv"),
            (w["provider"], "/provider/"),
            (w["me"], "/me/"), (w["me"], "/me/enrollments"), (w["me"], f"/me/enrollments/{mine}"),
            (w["me"], "/me/payments"), (w["me"], f"/me/payments/{mine}"), (w["me"], "/me/journal")]


def _measure(app, w: dict, fac: User) -> dict[str, int]:
    out, clients = {}, {}
    for who, path in _pages(w, fac):
        client = clients.get(who.id)
        if client is None:
            client = clients[who.id] = signed_in(app, who)
            client.get(path)  # the session's first request does one-time work
        with counting() as statements:
            resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[-400:])
        label = path.replace(f"/{w['cohort'].id}/", "/<cohort>/").replace(f"/{w['mine'].id}", "/<enrollment>")
        out[label] = len(statements)
    return out


def test_statement_count_does_not_grow_with_rows(app, db):
    fac = factories.user("facilitator", password=None)
    doc = ConsentDocument(kind="participation", version=1, title="Participation", body="I agree to the terms." * 3,
                          sha256="0" * 64, is_active=True)
    _db.session.add(doc)
    _db.session.flush()
    small_world = _world(10, fac=fac, doc=doc)
    large_world = _world(1000, fac=fac, doc=doc)
    _db.session.commit()
    assert _db.session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.cohort_id == large_world["cohort"].id)) == 1001
    small = _measure(app, small_world, fac)
    large = _measure(app, large_world, fac)
    assert large == small, {p: (small[p], large[p]) for p in small if small[p] != large[p]}
    assert max(large.values()) <= 30, large  # a handful per page, whatever the data


def test_roster_shows_the_rows_it_batches(app, db):
    """The batched roster still tells people apart: waitlist places, consents, notes."""
    fac = factories.user("facilitator", password=None)
    doc = ConsentDocument(kind="participation", version=1, title="Participation", body="I agree to the terms." * 3,
                          sha256="0" * 64, is_active=True)
    _db.session.add(doc)
    _db.session.flush()
    w = _world(10, fac=fac, doc=doc)
    _db.session.commit()
    html = signed_in(app, fac).get(f"/facilitator/cohorts/{w['cohort'].id}/roster?status=all").get_data(as_text=True)
    assert "waitlist #1" in html and "waitlist #2" in html and "waitlist #3" not in html
    assert html.count("✓ signed") == 2  # the two seated people of ten (the measured participant signed nothing)
    csv = signed_in(app, fac).get(f"/facilitator/cohorts/{w['cohort'].id}/roster.csv").get_data(as_text=True)
    assert csv.count(",yes,") == 2


def test_a_large_roster_comes_in_pages(app, db):
    fac = factories.user("facilitator", password=None)
    doc = ConsentDocument(kind="participation", version=1, title="Participation", body="I agree to the terms." * 3,
                          sha256="0" * 64, is_active=True)
    _db.session.add(doc)
    _db.session.flush()
    w = _world(120, fac=fac, doc=doc)
    _db.session.commit()
    client = signed_in(app, fac)
    url = f"/facilitator/cohorts/{w['cohort'].id}/roster?status=all"
    first, third = client.get(url).get_data(as_text=True), client.get(url + "&page=3").get_data(as_text=True)
    assert "Page 1 of 3 · 121 people" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert "Page 3 of 3" in third and 'rel="next"' not in third
    assert sum(page.count('<th scope="row">') for page in (first, third)) == 50 + 21
    assert "Page 3 of 3" in client.get(url + "&page=99").get_data(as_text=True)  # past the end: the last page
    csv = client.get(f"/facilitator/cohorts/{w['cohort'].id}/roster.csv").get_data(as_text=True)
    assert len(csv.strip().splitlines()) == 1 + 121  # the export has everyone
