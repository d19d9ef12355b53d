"""The public booking pages and the guest's manage pages, without JavaScript."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import func, select

from retreat.consults import booking as bookings
from retreat.consults import manage as manage_links
from retreat.consults import prescreen
from retreat.consults import slots as free_times
from retreat.messaging.render import render_email
from retreat.models import Consultation, OutboxMessage
from retreat.timeutil import now_utc
from tests.links import open_link
from tests.unit.test_consult_support import (
    BASE_URL,
    around_the_clock_facilitator,
    facilitator_with_hours,
    guest,
)

_fac = around_the_clock_facilitator


def _links(r, prefix="/consult/details"):
    return [html.unescape(u) for u in re.findall(r'href="(' + re.escape(prefix) + r'[^"]*)"', r.get_data(as_text=True))]


def _form(**kw) -> dict:
    data = {"facilitator": "any", "name": "Grace Guest", "email": "grace@example.com", "phone": "",
            "timezone": "Europe/Berlin", "reason": "Curious.", "heard_from": "Social media"}
    data.update(kw)
    return data


def _count(db, model=Consultation):
    return db.session.scalar(select(func.count(model.id)))


def test_booking_page_shows_times_in_the_visitor_zone(client, db):
    facilitator_with_hours(hours="09:00-10:00", min_notice_minutes=60)  # Denver
    r = client.get("/consult/?tz=Asia/Kolkata")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Times in Asia/Kolkata" in page and 'data-tz-chosen="1"' in page
    labels = re.findall(r'class="time-slot"[^>]*>([^<]+)<', page)
    assert labels in (["8:30 PM", "9:00 PM"], ["9:30 PM", "10:00 PM"])  # 09:00 Denver (MDT or MST) in IST
    assert "js/booking.js" in page and "<script>" not in page
    # Without a chosen zone, the page says so, so that the script can detect the browser's.
    assert 'data-tz-chosen="0"' in client.get("/consult/").get_data(as_text=True)
    # An unknown zone falls back to the practice's zone instead of failing.
    assert client.get("/consult/?tz=Not/AZone&from=2020-13-45&day=nope&facilitator=abc").status_code == 200


def test_booking_page_without_facilitators_says_so(client, db):
    r = client.get("/consult/")
    assert r.status_code == 200 and "not open right now" in r.get_data(as_text=True)


def test_whole_booking_flow_without_javascript(client, db):
    fac = _fac(name="Fern")
    r = client.get("/consult/?tz=Europe/Berlin&facilitator=" + str(fac.id))
    link = _links(r)[0]
    r = client.get(link)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Your details" in page and "with Fern" in page
    start = re.search(r'name="start" value="([^"]+)"', page).group(1)
    r = client.post("/consult/details?tz=Europe/Berlin", data=_form(start=start, facilitator=str(fac.id),
                                                                     q_psychosis="no", q_suicidality="yes"))
    assert r.status_code == 303 and r.headers["Referrer-Policy"] == "no-referrer"
    c = db.session.scalar(select(Consultation))
    assert r.headers["Location"] == f"/consult/booking/{c.id}"  # the manage token stays out of every address
    assert c.facilitator_id == fac.id and c.guest_tz == "Europe/Berlin" and c.flagged
    assert c.heard_from == "Social media" and prescreen.consult_answers(c) == {"psychosis": "no", "suicidality": "yes"}
    r = client.get(r.headers["Location"])
    page = r.get_data(as_text=True)
    assert "You are booked" in page and "https://video.example.com/room-1" in page
    assert "988" in page and "If you need support right now" in page  # safety answer: crisis resources shown
    assert r.headers["Cache-Control"] == "no-store"
    assert db.session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.template == "consult_confirmation")) == 1


def test_details_page_needs_a_valid_time_and_facilitator(client, db):
    _fac()
    for query in ("", "?start=tomorrow", "?start=2026-02-30T10:00:00Z", "?start=2030-01-01T10:00:00",
                  "?start=2030-01-01T10:00:00Z&facilitator=99999"):
        r = client.get("/consult/details" + query)
        assert r.status_code == 302 and r.headers["Location"].endswith("/consult/")


BAD_FORMS = [
    ({"name": "x" * 201}, "under 200 characters"),
    ({"name": ""}, "Enter your name."),
    ({"email": "nope"}, "valid email"),
    ({"phone": "9" * 41}, "under 40 characters"),
    ({"reason": "x" * 2001}, "under 2000 characters"),
    ({"timezone": "Mars/Base"}, "is not one we know"),
    ({"q_psychosis": "perhaps"}, "Not a valid choice"),
    ({"start": "2020-01-01T10:00:00Z"}, "already passed"),
    ({"start": "garbage"}, "Choose a time"),
    ({"facilitator": "424242"}, "not taking bookings"),
]


def test_bad_input_gets_a_clear_message_and_books_nothing(client, db):
    _fac()
    start = free_times.next_free_slots(now_utc(), now_utc(), limit=1)[0].start
    for changes, message in BAD_FORMS:
        r = client.post("/consult/details", data=_form(**{"start": start.isoformat(), **changes}))
        assert r.status_code == 422, changes
        assert message in html.unescape(r.get_data(as_text=True)), changes
    assert _count(db) == 0


def test_taken_time_gets_a_friendly_page_with_next_free_times(client, db):
    _fac()
    now = now_utc()
    start = free_times.next_free_slots(now + timedelta(hours=3), now, limit=1)[0].start
    bookings.book(start=start, base_url=BASE_URL, now=now, **guest(email="first@example.com"))
    db.session.commit()
    r = client.post("/consult/details", data=_form(start=start.isoformat(), name="Second Person",
                                                   email="second@example.com"))
    page = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 409 and "That time was just taken" in page
    assert 'value="Second Person"' in page and 'value="second@example.com"' in page  # details kept
    alternatives = re.findall(r'type="radio" id="alt-\d+" name="start" value="([^"]+)"', page)
    assert len(alternatives) == 6 and start.strftime("%Y-%m-%dT%H:%M:%SZ") not in alternatives
    r = client.post("/consult/details", data=_form(start=alternatives[0], name="Second Person",
                                                   email="second@example.com"))
    assert r.status_code == 303 and _count(db) == 2


def _booked(client, db, **kw):
    _fac(**kw)
    now = now_utc()
    start = free_times.next_free_slots(now + timedelta(days=3), now, limit=1)[0].start
    b = bookings.book(start=start, base_url=BASE_URL, now=now, **guest())
    db.session.commit()
    return b, open_link(client, f"/consult/manage/{b.manage_token}")


def test_manage_reschedule_and_cancel_through_the_pages(client, db):
    b, url = _booked(client, db)
    r = client.get(url)
    assert r.status_code == 200 and "Reschedule" in r.get_data(as_text=True)
    r = client.get(url + "/reschedule")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Choose a new time" in page
    day_links = [u for u in _links(r, prefix=url + "/reschedule?") if "day=" in u]
    r = client.get(day_links[-1])  # the latest day shown: well outside the 24-hour cutoff, whatever the hour
    links = [u for u in _links(r, prefix=url + "/reschedule?") if "start=" in u]
    confirm = client.get(links[0])
    assert confirm.status_code == 200 and "Move your call?" in confirm.get_data(as_text=True)
    new_start = re.search(r'name="start" value="([^"]+)"', confirm.get_data(as_text=True)).group(1)
    old_link = f"/consult/manage/{b.manage_token}"
    r = client.post(url + "/reschedule", data={"start": new_start})
    assert r.status_code == 303
    new_url = r.headers["Location"]
    assert new_url == url and b.consult.sequence == 1  # this browser holds the new link now
    assert b.consult.start_at.strftime("%Y-%m-%dT%H:%M:%SZ") == new_start
    r = client.get(old_link)
    assert r.status_code == 404 and "replaced by a newer one" in r.get_data(as_text=True)
    assert client.get(new_url).status_code == 200
    ics = client.get(new_url + "/invite.ics")
    assert ics.mimetype == "text/calendar" and b.consult.calendar_uid.encode() in ics.data
    assert b"SEQUENCE:1" in ics.data and b"METHOD:PUBLISH" in ics.data
    confirm = client.get(new_url + "/cancel")
    assert confirm.status_code == 200 and "Yes, cancel my call" in confirm.get_data(as_text=True)
    assert b.consult.status == "booked"
    r = client.post(new_url + "/cancel")
    assert r.status_code == 302 and r.headers["Location"] == new_url
    page = client.get(new_url).get_data(as_text=True)
    assert "was cancelled" in page and "Book a new time" in page and b.consult.status == "cancelled"
    ics = client.get(new_url + "/invite.ics")
    assert b"METHOD:CANCEL" in ics.data and b"SEQUENCE:2" in ics.data


def test_reschedule_to_a_taken_time_offers_others(client, db):
    b, url = _booked(client, db)
    other = free_times.next_free_slots(b.consult.end_at + timedelta(hours=2), now_utc(), limit=1)[0].start
    bookings.book(start=other, base_url=BASE_URL, now=now_utc(), **guest(email="other@example.com"))
    db.session.commit()
    r = client.post(url + "/reschedule", data={"start": other.isoformat()})
    page = r.get_data(as_text=True)
    assert r.status_code == 409 and "just taken" in page and 'name="start"' in page
    assert b.consult.sequence == 0


def test_inside_the_cutoff_changes_are_refused_kindly(client, db):
    _fac()
    now = now_utc()
    soon = free_times.next_free_slots(now + timedelta(hours=2), now, limit=1)[0].start
    b = bookings.book(start=soon, base_url=BASE_URL, now=now, **guest())
    db.session.commit()
    # its confirmation states no deadline that has passed, and says how to change it instead
    mail = db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.dedupe_key == f"consult-{b.consult.id}-s0-confirmation"))
    assert mail.context["change_until"] == ""
    rendered = render_email(mail.template, mail.context)
    for body in (rendered.text, rendered.html):
        assert "online until" not in body and "too close to change online" in body
    url = open_link(client, f"/consult/manage/{b.manage_token}")
    page = client.get(url).get_data(as_text=True)
    assert "can no longer be changed online" in page and "Cancel this call" not in page
    for path in ("/reschedule", "/cancel"):
        assert client.get(url + path).status_code == 302
    r = client.post(url + "/cancel", follow_redirects=True)
    assert "too close to the call" in r.get_data(as_text=True) and b.consult.status == "booked"


def test_tampered_or_expired_links_get_a_clear_message(app, client, db):
    b, _page = _booked(client, db)
    url = f"/consult/manage/{b.manage_token}"
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    stranger = app.test_client()
    for path in (tampered, tampered + "/reschedule", tampered + "/invite.ics", "/consult/manage/x"):
        r = stranger.get(path)
        assert r.status_code == 404 and "not valid" in r.get_data(as_text=True)
    assert stranger.post(tampered + "/cancel").status_code == 405  # the emailed link only opens pages
    # the token-free pages open only in a browser that opened the link
    for path in ("", "/reschedule", "/cancel", "/invite.ics"):
        r = stranger.get(f"/consult/booking/{b.consult.id}{path}")
        assert r.status_code == 400 and "Open that link again" in r.get_data(as_text=True)
    r = stranger.post(f"/consult/booking/{b.consult.id}/cancel")
    assert r.status_code == 400 and b.consult.status == "booked"
    expired = manage_links.link_serializer().dumps({"c": b.consult.id, "n": "x", "e": int(now_utc().timestamp()) - 5})
    r = stranger.get(f"/consult/manage/{expired}")
    assert r.status_code == 410 and "expired" in r.get_data(as_text=True)
    assert b.consult.status == "booked"


def test_home_page_links_to_booking(client, db):
    assert b'href="/consult/"' in client.get("/").data


def test_reschedule_offers_and_accepts_only_times_that_can_still_be_changed(client, db):
    b, url = _booked(client, db)
    now = now_utc()
    cutoff = now + timedelta(hours=24)
    page = client.get(url + "/reschedule")
    text = page.get_data(as_text=True)
    assert "Only times more than 24 hours away are shown" in text
    for day in [u for u in _links(page, prefix=url + "/reschedule?") if "day=" in u][:2]:
        starts = [u.split("start=")[1] for u in _links(client.get(day), prefix=url + "/reschedule?") if "start=" in u]
        assert starts and all(s.replace("%3A", ":") > cutoff.strftime("%Y-%m-%dT%H:%M:%SZ") for s in starts)
    inside = free_times.next_free_slots(now + timedelta(hours=5), now, limit=1)[0].start
    r = client.post(url + "/reschedule", data={"start": inside.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert r.status_code == 422 and "Choose a time more than 24 hours away" in r.get_data(as_text=True)
    db.session.expire_all()
    assert b.consult.sequence == 0
    # a move to a time outside the cutoff: its email names a deadline still ahead
    later = free_times.next_free_slots(now + timedelta(days=2), now, limit=1, facilitator_id=b.consult.facilitator_id)
    client.post(url + "/reschedule", data={"start": later[0].start.strftime("%Y-%m-%dT%H:%M:%SZ")})
    mail = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f"consult-{b.consult.id}-s1-confirmation"))
    assert "You can do it online until" in render_email(mail.template, mail.context).text


def test_without_a_video_link_the_emails_say_who_sends_it(client, db):
    _booked(client, db, video_link=None)
    rows = {m.template: m for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template.in_(["consult_confirmation", "consult_facilitator_notice", "consult_reminder"])))}
    assert rows["consult_confirmation"].context["video_link"] in (None, "")
    guest_mail = render_email("consult_confirmation", rows["consult_confirmation"].context)
    assert "will send you the video-call link" not in guest_mail.text
    assert "will email you one before the call (we have asked them to)" in guest_mail.text
    notice = render_email("consult_facilitator_notice", rows["consult_facilitator_notice"].context)
    assert "You have no video link in your consult settings, so Grace Guest has none: email them one" in notice.text
    assert "grace@example.com" in notice.text and "email them one" in notice.html
    reminder = render_email("consult_reminder", rows["consult_reminder"].context)
    assert "is emailing you the video link. Not there yet? Reply to this email." in reminder.text
