"""Facilitator portal: availability editor with week preview, consult list, detail and outcomes."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.consults import booking as bookings
from retreat.consults import publishing
from retreat.consults import slots as free_times
from retreat.extensions import db
from retreat.models import AuditEvent, Consultation
from retreat.timeutil import now_utc
from tests import factories
from tests.unit.test_consult_support import BASE_URL, facilitator_with_hours, guest, signed_in


@pytest.fixture()
def make_client(app, db):
    return lambda user: signed_in(app, user)


@pytest.fixture()
def fac_client(make_client, db):
    return make_client(facilitator_with_hours(tz="America/Denver", hours="09:00-12:00", days=range(5)))


def _text(r) -> str:
    return html.unescape(r.get_data(as_text=True))


def test_only_facilitators_reach_the_pages(app, make_client, db):
    participant = factories.user("participant", password=None)
    finance = factories.user("finance", password=None)
    db.session.commit()
    for path in ["/facilitator/availability", "/facilitator/consults"]:
        assert signed_in(app).get(path).status_code == 302  # to the login page
        assert make_client(participant).get(path).status_code == 403
        assert make_client(finance).get(path).status_code == 403


def test_availability_editor_shows_rules_settings_and_a_week_preview(fac_client, db):
    r = fac_client.get("/facilitator/availability")
    page = _text(r)
    assert r.status_code == 200 and "Weekly hours" in page and "What guests can book" in page
    assert 'value="09:00-12:00"' in page and "America/Denver" in page and "Taking bookings" in page
    assert page.count('<li class="preview-day') == 7
    nav = _text(fac_client.get("/facilitator/consults"))
    assert 'href="/facilitator/availability"' in nav and 'href="/facilitator/consults"' in nav
    # Another week can be previewed; a bad week parameter falls back to this week.
    assert fac_client.get("/facilitator/availability?week=2030-01-07").status_code == 200
    assert fac_client.get("/facilitator/availability?week=banana").status_code == 200


def test_weekly_hours_saved_or_refused_with_a_message(fac_client, db):
    fac = fac_client.user
    r = fac_client.post("/facilitator/availability/weekly", data={"w-day_0": "08:00-10:00, 14:00-16:00",
                                                                  "w-day_5": "10:00 - 11:30"})
    assert r.status_code == 302
    assert publishing.weekly_rules(fac) == {0: [(480, 600), (840, 960)], 5: [(600, 690)]}
    r = fac_client.post("/facilitator/availability/weekly", data={"w-day_0": "18:00-17:00", "w-day_1": "lunchtime"})
    page = _text(r)
    assert r.status_code == 422 and "Monday: write hours like" in page and "Tuesday: write hours like" in page
    assert 'value="lunchtime"' in page  # what they typed is kept
    assert publishing.weekly_rules(fac)[0] == [(480, 600), (840, 960)]


def test_settings_saved_or_refused(fac_client, db):
    fac = fac_client.user
    data = {"s-tz": "Europe/Berlin", "s-duration_minutes": "45", "s-slot_interval_minutes": "15",
            "s-buffer_before_minutes": "5", "s-buffer_after_minutes": "15", "s-min_notice_hours": "24",
            "s-horizon_days": "30", "s-daily_cap": "4", "s-change_cutoff_hours": "12",
            "s-video_link": "https://meet.example.com/fern", "s-accepting_bookings": "y"}
    assert fac_client.post("/facilitator/availability/settings", data=data).status_code == 302
    s = publishing.get_settings(fac)
    assert (s.tz, s.duration_minutes, s.min_notice_minutes, s.daily_cap, s.change_cutoff_hours) == (
        "Europe/Berlin", 45, 24 * 60, 4, 12)
    bad = {**data, "s-duration_minutes": "5", "s-video_link": "not a link", "s-tz": "Moon/Base"}
    r = fac_client.post("/facilitator/availability/settings", data=bad)
    assert r.status_code == 422 and "'Moon/Base' is not one we know" in _text(r)
    assert publishing.get_settings(fac).duration_minutes == 45
    r = fac_client.post("/facilitator/availability/settings", data={**data, "s-video_link": "ftp://x"})
    assert r.status_code == 422 and "starting with https://" in _text(r)
    # Unticking pauses bookings: no slots.
    paused = {k: v for k, v in data.items() if k != "s-accepting_bookings"}
    assert fac_client.post("/facilitator/availability/settings", data=paused).status_code == 302
    assert free_times.free_slots(now_utc(), now_utc() + timedelta(days=20), now_utc()) == []


def test_date_changes_added_shown_and_removed(fac_client, make_client, db):
    day = (now_utc() + timedelta(days=3)).date()
    r = fac_client.post("/facilitator/availability/overrides",
                        data={"o-day": day.isoformat(), "o-kind": "extra", "o-start": "18:00", "o-end": "19:30",
                              "o-note": "Evening clinic"})
    assert r.status_code == 302
    page = _text(fac_client.get(r.headers["Location"]))
    assert "Evening clinic" in page and "Extra hours 18:00-19:30" in page
    r = fac_client.post("/facilitator/availability/overrides",
                        data={"o-day": day.isoformat(), "o-kind": "extra", "o-start": "19:00", "o-end": "18:00"})
    assert r.status_code == 422 and "The end must be after the start." in _text(r)
    r = fac_client.post("/facilitator/availability/overrides", data={"o-day": "2026-02-30", "o-kind": "off"})
    assert r.status_code == 422 and "Enter the date." in _text(r)
    override = publishing.upcoming_overrides(fac_client.user, now_utc())[0]
    other = make_client(facilitator_with_hours())
    assert other.post(f"/facilitator/availability/overrides/{override.id}/delete").status_code == 404
    assert fac_client.post(f"/facilitator/availability/overrides/{override.id}/delete").status_code == 302
    assert publishing.upcoming_overrides(fac_client.user, now_utc()) == []


def _book_with(fac, *, days_ahead=3, now=None, **kw):
    now = now or now_utc()
    start = free_times.next_free_slots(now + timedelta(days=days_ahead), now, limit=1, facilitator_id=fac.id)[0].start
    consult = bookings.book(start=start, facilitator_id=fac.id, base_url=BASE_URL, now=now, **guest(**kw)).consult
    db.session.commit()
    return consult


def test_consult_list_puts_flagged_first_without_diagnoses(fac_client, db):
    fac = fac_client.user
    plain = _book_with(fac, days_ahead=1, name="Plain Person", email="plain@example.com")
    flagged = _book_with(fac, days_ahead=5, name="Flagged Person", email="flag@example.com",
                         answers={"psychosis": "yes"}, reason="Marker-REASON-1")
    page = _text(fac_client.get("/facilitator/consults"))
    assert page.index("Flagged Person") < page.index("Plain Person")
    assert "Review before call" in page and "Marker-REASON-1" not in page and "psychosis" not in page.lower()
    detail = fac_client.get(f"/facilitator/consults/{flagged.id}")
    text = _text(detail)
    assert detail.status_code == 200 and detail.headers["Cache-Control"] == "no-store"
    assert "Review before call." in text and "Marker-REASON-1" in text and "first consult" in text
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "consult.viewed",
                                                      AuditEvent.object_id == str(flagged.id)))
    assert plain.id != flagged.id


def test_other_facilitators_consults_are_not_found(fac_client, make_client, db):
    c = _book_with(fac_client.user)
    other = make_client(facilitator_with_hours())
    assert other.get(f"/facilitator/consults/{c.id}").status_code == 404
    assert other.post(f"/facilitator/consults/{c.id}/outcome", data={"outcome": "completed"}).status_code == 404
    assert other.post(f"/facilitator/consults/{c.id}/cancel").status_code == 404
    assert fac_client.get("/facilitator/consults/999999").status_code == 404


def test_outcome_is_recorded_after_the_call(fac_client, db):
    fac = fac_client.user
    future = _book_with(fac)
    r = fac_client.post(f"/facilitator/consults/{future.id}/outcome", data={"outcome": "completed"},
                        follow_redirects=True)
    assert "once the call has started" in _text(r) and future.status == "booked"
    past = _book_with(fac, now=now_utc() - timedelta(days=5), days_ahead=1, email="past@example.com")
    r = fac_client.post(f"/facilitator/consults/{past.id}/outcome",
                        data={"outcome": "completed", "recommended_cohort": "Colorado autumn", "notes": "Good fit"})
    assert r.status_code == 302
    assert past.status == "completed" and past.recommended_cohort == "Colorado autumn"
    page = _text(fac_client.get(f"/facilitator/consults/{past.id}"))
    assert "Good fit" in page and 'value="Colorado autumn"' in page
    r = fac_client.post(f"/facilitator/consults/{past.id}/outcome", data={"outcome": "healed"})
    assert r.status_code == 422 and past.status == "completed"
    assert "Past" in _text(fac_client.get("/facilitator/consults"))


def test_facilitator_cancels_and_the_guest_is_told(fac_client, db):
    c = _book_with(fac_client.user)
    r = fac_client.post(f"/facilitator/consults/{c.id}/cancel")
    assert r.status_code == 302 and c.status == "cancelled" and c.cancelled_by == "facilitator"
    r = fac_client.post(f"/facilitator/consults/{c.id}/cancel", follow_redirects=True)
    assert r.status_code == 200
    assert db.session.scalar(select(Consultation).where(Consultation.id == c.id)).status == "cancelled"
