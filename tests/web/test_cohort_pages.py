"""Cohort pages: public, participant (apply, tracker, seat, checklist, consents), facilitator, roster."""

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.cohorts import enrollment, preparation, seats
from retreat.cohorts.models import (
    CohortStatus,
    Enrollment,
    Retreat,
    SeatState,
)
from retreat.cohorts.models import (
    EnrollmentStatus as S,
)
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc


@pytest.fixture()
def make_client(app, db):
    """Like the shared fixture, but the login survives strong session protection (see fc.login)."""

    def _make(role="participant", **kw):
        return fc.client_for(app, factories.user(role=role, password=None, **kw))

    return _make


def _future_cohort(**kw):
    return fc.cohort(starts_at=now_utc() + timedelta(days=60), **kw)


def _count(db, model):
    return db.session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- public

def test_public_pages_show_seats_price_and_apply(app, db):
    client = fc.client_for(app)
    c = _future_cohort(capacity=12)
    fc.applicant(c, now=now_utc())
    r = client.get("/retreats")
    assert r.status_code == 200 and c.title.encode() in r.data and b"12 seats left" in r.data
    r = client.get(f"/retreats/{c.retreat.slug}")
    assert r.status_code == 200 and b"Lodging" in r.data
    r = client.get(f"/cohorts/{c.id}")
    assert r.status_code == 200
    assert b"$4,500.00" in r.data and b"$500.00" in r.data and b"Apply now" in r.data


def test_public_full_cohort_says_waitlist_and_drafts_are_hidden(app, db):
    client = fc.client_for(app)
    c = _future_cohort(capacity=1)
    e = fc.applicant(c, now=now_utc())
    seats.take_hold(e, now=now_utc(), actor=None)
    r = client.get(f"/cohorts/{c.id}")
    assert b"waitlist open" in r.data and b"Join the waitlist" in r.data
    draft = _future_cohort(status=CohortStatus.DRAFT)
    assert client.get(f"/cohorts/{draft.id}").status_code == 404
    assert client.get("/retreats/nope").status_code == 404


# ---------------------------------------------------------------- participant

def test_apply_then_hold_then_tracker(make_client, db):
    c = _future_cohort(capacity=3)
    p = make_client("participant")
    r = p.get(f"/me/cohorts/{c.id}/apply")
    assert r.status_code == 200
    r = p.post(f"/me/cohorts/{c.id}/apply", data={"motivation": "Curious", "agree": "y"})
    assert r.status_code == 302
    enr = db.session.scalar(select(Enrollment).where(Enrollment.participant_id == p.user.id))
    r = p.get(f"/me/enrollments/{enr.id}")
    assert r.status_code == 200 and b"Your progress" in r.data and b"Reserve my seat" in r.data
    r = p.post(f"/me/enrollments/{enr.id}/hold", follow_redirects=True)
    assert b"Your seat is held" in r.data and b"Deposit:" in r.data
    assert enr.seat == SeatState.HELD and c.seats_taken == 1


def test_applying_twice_or_to_closed_cohort_changes_nothing(make_client, db):
    c = _future_cohort()
    p = make_client("participant")
    assert p.post(f"/me/cohorts/{c.id}/apply", data={"agree": "y"}).status_code == 302
    n = _count(db, Enrollment)
    r = p.post(f"/me/cohorts/{c.id}/apply", data={"agree": "y"})
    assert r.status_code == 422 and b"already applied" in r.data
    closed = _future_cohort(status=CohortStatus.CLOSED)
    r = p.post(f"/me/cohorts/{closed.id}/apply", data={"agree": "y"})
    assert r.status_code == 422 and b"not accepting applications" in r.data
    r = p.post(f"/me/cohorts/{_future_cohort().id}/apply", data={})
    assert r.status_code == 422 and b"Please confirm" in r.data
    assert _count(db, Enrollment) == n


def test_loser_of_last_seat_gets_waitlist_message_not_500(make_client, db):
    c = _future_cohort(capacity=1)
    winner = fc.applicant(c, now=now_utc())
    p = make_client("participant")
    p.post(f"/me/cohorts/{c.id}/apply", data={"agree": "y"})
    enr = db.session.scalar(select(Enrollment).where(Enrollment.participant_id == p.user.id))
    seats.take_hold(winner, now=now_utc(), actor=None)
    db.session.commit()
    r = p.post(f"/me/enrollments/{enr.id}/hold", follow_redirects=True)
    assert r.status_code == 200
    assert b"The last seat was just taken; you are on the waitlist" in r.data
    assert b"number 1" in r.data


def test_expired_offer_cannot_be_accepted(make_client, db):
    c = _future_cohort(capacity=1)
    holder = fc.applicant(c, now=now_utc())
    seats.take_hold(holder, now=now_utc(), actor=None)
    p = make_client("participant")
    p.post(f"/me/cohorts/{c.id}/apply", data={"agree": "y"})
    enr = db.session.scalar(select(Enrollment).where(Enrollment.participant_id == p.user.id))
    assert enr.is_waitlisted
    enrollment.withdraw(holder, now=now_utc() - timedelta(hours=49), actor=None)
    assert enr.seat == SeatState.OFFERED
    db.session.commit()  # the view's rollback must not undo the test's own setup
    r = p.post(f"/me/enrollments/{enr.id}/offer/accept", follow_redirects=True)
    assert b"offer has expired" in r.data
    assert enr.seat == SeatState.OFFERED and c.seats_taken == 1


def test_other_people_cannot_see_my_enrollment(make_client, db):
    c = _future_cohort()
    enr = fc.applicant(c, now=now_utc())
    other = make_client("participant")
    assert other.get(f"/me/enrollments/{enr.id}").status_code == 404
    assert other.post(f"/me/enrollments/{enr.id}/withdraw").status_code == 404
    assert make_client("finance").get(f"/facilitator/cohorts/{c.id}/roster").status_code == 403
    assert make_client("provider").get(f"/facilitator/enrollments/{enr.id}").status_code == 403


def test_checklist_answer_too_long_changes_nothing(make_client, db):
    c = _future_cohort()
    p = make_client("participant")
    enr = enrollment.apply(c, p.user, now=now_utc())
    db.session.commit()
    r = p.post(f"/me/enrollments/{enr.id}/checklist/intention", data={"answer": "x" * 2001})
    assert r.status_code == 422 and b"under 2000 characters" in r.data
    item = next(i for i in enr.checklist if i.key == "intention")
    assert item.answer == "" and item.completed_at is None
    r = p.post(f"/me/enrollments/{enr.id}/checklist/intention", data={"answer": "To listen to my parts."})
    assert r.status_code == 302 and item.answer == "To listen to my parts." and item.completed_at
    r = p.post(f"/me/enrollments/{enr.id}/checklist/fasting", data={})
    assert r.status_code == 422
    assert p.post(f"/me/enrollments/{enr.id}/checklist/fasting", data={"acknowledged": "y"}).status_code == 302


def test_consent_sign_resign_on_new_version_and_download(make_client, db):
    fac = factories.user("facilitator")
    v1 = preparation.publish_consent(kind="participation", title="Participation consent", body="I agree to take part. " * 3,
                          actor=fac, now=now_utc())
    c = _future_cohort()
    p = make_client("participant", name="Robin Example")
    enr = enrollment.apply(c, p.user, now=now_utc())
    db.session.commit()
    r = p.post(f"/me/enrollments/{enr.id}/consents/{v1.id}", data={"typed_name": "Someone Else"})
    assert r.status_code == 422 and b"exactly as on your account" in r.data
    r = p.post(f"/me/enrollments/{enr.id}/consents/{v1.id}", data={"typed_name": "robin  example"})
    assert r.status_code == 302
    assert preparation.all_signed(enr)
    assert next(i for i in enr.checklist if i.key == "consents").completed_at is not None
    (sig,) = preparation.consent_signatures(enr)
    assert sig.document_sha256 == v1.sha256 and sig.ip == "127.0.0.1"
    r = p.get(f"/me/enrollments/{enr.id}/consents/signed/{sig.id}.txt")
    assert r.status_code == 200 and b"I agree to take part." in r.data and v1.sha256.encode() in r.data
    preparation.publish_consent(kind="participation", title="Participation consent", body="Updated text, please re-read.",
                     actor=fac, now=now_utc())
    assert not preparation.all_signed(enr)
    item = next(i for i in enr.checklist if i.key == "consents")
    assert item.completed_at is None
    r = p.get(f"/me/enrollments/{enr.id}")
    assert b"New version: sign again" in r.data
    r = p.get("/me/")
    assert r.status_code == 200 and c.title.encode() in r.data and b"Applied" in r.data


# ---------------------------------------------------------------- facilitator

def test_facilitator_creates_retreat_with_pdf_cohort_and_session(make_client, db, app):
    f = make_client("facilitator")
    org = factories.provider_org()
    db.session.commit()
    pdf = b"%PDF-1.4\n% test guide\n" + b"0" * 100
    r = f.post("/facilitator/retreats/new", data={
        "title": "Colorado Spring Retreat", "slug": "", "summary": "A week", "description": "Text",
        "location": "Crestone, CO", "included": "Lodging\nMeals", "is_published": "y",
        "guide": (io.BytesIO(pdf), "Program Guide.pdf")}, content_type="multipart/form-data")
    assert r.status_code == 302, r.data
    retreat = db.session.scalar(select(Retreat).where(Retreat.slug == "colorado-spring-retreat"))
    assert retreat.guide_filename == "Program Guide.pdf" and retreat.guide_stored_name != "Program Guide.pdf"
    r = f.get("/retreats/colorado-spring-retreat/guide.pdf")
    assert r.status_code == 200 and r.data == pdf and "Program Guide.pdf" in r.headers["Content-Disposition"]
    bad = f.post(f"/facilitator/retreats/{retreat.id}/edit", data={
        "title": "Colorado Spring Retreat", "slug": "colorado-spring-retreat",
        "guide": (io.BytesIO(b"not a pdf"), "x.pdf")}, content_type="multipart/form-data")
    assert bad.status_code == 422 and b"not a PDF" in bad.data
    start = (now_utc() + timedelta(days=90)).strftime("%Y-%m-%dT10:00")
    end = (now_utc() + timedelta(days=96)).strftime("%Y-%m-%dT14:00")
    form = {"title": "June cohort", "timezone": "America/Denver", "starts_at": start, "ends_at": end,
            "capacity": "12", "currency": "USD", "price": "4,500", "deposit": "500.00",
            "deposit_timing": "after_clearance", "provider_organization_id": str(org.id), "hold_minutes": "30",
            "offer_hours": "48", "refund_policy": "Full refund until 60 days before.",
            "tiers-0-days": "60", "tiers-0-percent": "100"}
    r = f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data={**form, "deposit": "5000"})
    assert r.status_code == 422 and b"between zero and the price" in r.data
    r = f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data=form)
    assert r.status_code == 302
    cohort = retreat.cohorts[0]
    assert cohort.price_minor == 450000 and cohort.deposit_minor == 50000 and cohort.status == "draft"
    assert cohort.starts_at.hour in (16, 17)  # 10:00 in Denver, stored in UTC
    assert f.post(f"/facilitator/cohorts/{cohort.id}/status", data={"status": "open"}).status_code == 302
    assert cohort.status == "open"
    r = f.post(f"/facilitator/cohorts/{cohort.id}/sessions", data={
        "kind": "dosing", "title": "First dosing session", "starts_at": start, "ends_at": start[:-5] + "12:00",
        "location": "Main hall", "video_url": "", "facilitator_id": str(f.user.id)}, follow_redirects=True)
    assert b"Session added" in r.data and b"First dosing session" in r.data
    assert f.get(f"/facilitator/cohorts/{cohort.id}").status_code == 200
    admin = make_client("admin")
    assert admin.get(f"/facilitator/cohorts/{cohort.id}/edit").status_code == 200


def test_roster_filters_notes_lodging_checkin_csv_and_no_clinical_text(make_client, db):
    f = make_client("facilitator")
    c = _future_cohort(capacity=2)
    a = fc.applicant(c, now=now_utc(), name="Alex Able")
    from retreat.cohorts import preparation

    preparation.complete(a, "intention", answer="PRIVATE-INTENTION-MARKER", now=now_utc())
    seats.take_hold(a, now=now_utc(), actor=None)
    enrollment.confirm_seat(a, now=now_utc(), actor=None)
    b = fc.applicant(c, now=now_utc(), name="Blair Bee")
    enrollment.decline(b, now=now_utc(), actor=f.user, reason="Not a fit right now")
    db.session.commit()
    r = f.get(f"/facilitator/cohorts/{c.id}/roster")
    assert r.status_code == 200 and b"Alex Able" in r.data and b"Blair Bee" not in r.data
    assert b"Deposit paid" in r.data and b"PRIVATE-INTENTION-MARKER" not in r.data
    r = f.get(f"/facilitator/cohorts/{c.id}/roster?status=exited")
    assert b"Blair Bee" in r.data and b"Alex Able" not in r.data
    assert f.get(f"/facilitator/cohorts/{c.id}/roster?status=<script>").status_code == 200
    r = f.post(f"/facilitator/enrollments/{a.id}/note", data={"body": "Arrives late Friday"}, follow_redirects=True)
    assert b"Arrives late Friday" in r.data
    r = f.post(f"/facilitator/enrollments/{a.id}/note", data={"body": "x" * 2001}, follow_redirects=True)
    assert b"under 2000" in r.data
    f.post(f"/facilitator/enrollments/{a.id}/lodging", data={"lodging": "=Cabin 3"})
    assert a.lodging == "=Cabin 3"
    csv_ = f.get(f"/facilitator/cohorts/{c.id}/roster.csv")
    assert csv_.status_code == 200 and csv_.mimetype == "text/csv"
    text = csv_.data.decode()
    assert text.splitlines()[0] == ("name,email,status,intake,clearance,payment,checklist,consents signed,"
                                    "lodging,waitlist place")
    assert "'=Cabin 3" in text and "PRIVATE-INTENTION-MARKER" not in text and "Blair Bee" in text
    a.participant.name = '=HYPERLINK("http://evil.example")'
    db.session.commit()
    import csv as _csv
    import io as _io

    rows = list(_csv.DictReader(_io.StringIO(f.get(f"/facilitator/cohorts/{c.id}/roster.csv").data.decode())))
    assert "'=HYPERLINK(\"http://evil.example\")" in [r["name"] for r in rows]  # every column is guarded
    a.participant.name = "Alex Able"
    db.session.commit()
    from retreat.cohorts import catalog as svc

    s = svc.add_session(c, kind="ifs", title="IFS circle", starts_at=c.starts_at,
                        ends_at=c.starts_at + timedelta(hours=2), location="", video_url="", facilitator_id=None,
                        actor=f.user, now=now_utc())
    r = f.post(f"/facilitator/sessions/{s.id}/checkin/{a.id}", data={"status": "present"}, follow_redirects=True)
    assert b"<strong>1</strong> of 1 checked in" in r.data
    r = f.post(f"/facilitator/sessions/{s.id}/checkin/{b.id}", data={"status": "present"}, follow_redirects=True)
    assert b"Only participants with a confirmed seat" in r.data


def test_facilitator_declines_and_reorders_waitlist(make_client, db):
    f = make_client("facilitator")
    c = _future_cohort(capacity=1)
    holder = fc.applicant(c, now=now_utc())
    seats.take_hold(holder, now=now_utc(), actor=None)
    w1, w2 = fc.applicant(c, now=now_utc()), fc.applicant(c, now=now_utc())
    db.session.commit()
    r = f.post(f"/facilitator/enrollments/{w2.id}/waitlist/up", follow_redirects=True)
    assert b"Waitlist updated" in r.data and w2.waitlist_position < w1.waitlist_position
    r = f.post(f"/facilitator/enrollments/{w1.id}/decline", data={"reason": ""}, follow_redirects=True)
    assert b"Give a reason" in r.data and w1.status == S.APPLIED
    f.post(f"/facilitator/enrollments/{w1.id}/decline", data={"reason": "Group composition"})
    assert w1.status == S.DECLINED and not w1.is_waitlisted
    r = f.get(f"/facilitator/cohorts/{c.id}")
    assert r.status_code == 200 and b"Pipeline" in r.data
