"""Booking, round-robin, rescheduling, cancelling, manage links, outcomes and the messages they queue."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import func, select, text

from retreat.cli import demo
from retreat.consults import booking as bookings
from retreat.consults import manage as manage_links
from retreat.consults import outcomes as consult_outcomes
from retreat.consults import prescreen, publishing
from retreat.consults import slots as free_times
from retreat.core.crypto import hash_token
from retreat.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from retreat.messaging import sealed
from retreat.messaging.ics import build_calendar
from retreat.messaging.render import shows_crisis
from retreat.models import AuditEvent, Consultation, OutboxMessage, User
from tests import factories
from tests.unit.test_consult_support import BASE_URL, NOW, book, confirm_as_owner, facilitator_with_hours

DENVER = ZoneInfo("America/Denver")
TUE_10 = datetime(2026, 6, 2, 10, 0, tzinfo=DENVER)  # Tuesday 10:00 MDT, a day after NOW


def outbox_rows(db, consult=None):
    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    if consult is not None:
        rows = [r for r in rows if r.context.get("consult_id") == consult.id]
    return rows


def test_booking_creates_consult_participant_and_messages(db):
    fac = facilitator_with_hours()
    b = book(TUE_10, answers={"psychosis": "no", "pregnancy": "yes"})
    c = b.consult
    assert (c.start_at, c.end_at) == (TUE_10, TUE_10 + timedelta(minutes=30))
    assert (c.blocked_start, c.blocked_end) == (TUE_10, TUE_10 + timedelta(minutes=40))  # 10 min after-buffer
    assert c.facilitator_id == fac.id and c.status == "booked" and c.sequence == 0 and c.flagged
    # A guest record: no account is made or joined until the email's owner says "this was me".
    assert c.participant_id is None and c.owner_confirmed_at is None and c.claim_token_hash
    assert db.session.scalar(select(User).where(User.email == "grace@example.com")) is None
    assert b.manage_url == f"{BASE_URL}/consult/manage/{b.manage_token}"
    assert c.manage_token_hash and b.manage_token not in c.manage_token_hash

    rows = {r.template + ":" + r.dedupe_key.rsplit("-", 1)[-1]: r for r in outbox_rows(db, c)}
    confirm = rows["consult_confirmation:confirmation"]
    assert confirm.recipient_email == "grace@example.com" and confirm.recipient_tz == "America/New_York"
    assert confirm.due_at == NOW and sealed.context_of(confirm)["manage_url"] == b.manage_url
    claim_url = sealed.context_of(confirm)["claim_url"]
    assert claim_url.startswith(f"{BASE_URL}/consult/claim/") and "claim_url" not in confirm.context
    assert claim_url != b.manage_url and "claim_url" not in sealed.context_of(rows["consult_reminder:24h"])
    assert confirm.context["video_link"] == "https://video.example.com/room-1"
    assert confirm.context["when"] == "Tuesday 2 June 2026, 12:00 (America/New_York)"  # the guest's zone
    assert confirm.ics["method"] == "REQUEST" and confirm.ics["sequence"] == 0 and confirm.ics["uid"] == c.calendar_uid
    assert confirm.ics["location"] == "https://video.example.com/room-1"
    assert rows["consult_reminder:24h"].due_at == TUE_10 - timedelta(hours=24)
    assert rows["consult_reminder:1h"].due_at == TUE_10 - timedelta(hours=1)
    notice = rows["consult_facilitator_notice:booked"]
    assert notice.recipient_user_id == fac.id and notice.context["when"] == "Tuesday 2 June 2026, 10:00 (America/Denver)"
    booked = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "consult.booked"))
    assert booked.actor_email == "grace@example.com" and booked.object_id == str(c.id)
    assert "flag" not in str(booked.details) and "pregnan" not in str(booked.details)
    # No health information in any message.
    for r in outbox_rows(db, c):
        assert "pregnan" not in str(r.context).lower() and "curious" not in str(r.context)
        assert "flag" not in str(r.context).lower()


def test_reminders_already_past_are_not_queued(db):
    facilitator_with_hours(min_notice_minutes=60)
    soon = NOW + timedelta(hours=3)  # 09:00 MDT
    c = book(soon).consult
    templates = [r.dedupe_key for r in outbox_rows(db, c) if r.template == "consult_reminder"]
    assert templates == [f"consult-{c.id}-s0-reminder-1h"]


def test_answers_and_reason_are_encrypted_at_rest(db):
    facilitator_with_hours()
    c = book(TUE_10, reason="Marker-REASON-7731", answers={"suicidality": "yes"}).consult
    db.session.flush()
    raw = db.session.execute(text("SELECT reason_encrypted, answers_encrypted FROM consultations WHERE id = :i"),
                             {"i": c.id}).one()
    assert "Marker-REASON-7731" not in raw[0] and "suicidality" not in raw[1]
    assert prescreen.consult_reason(c) == "Marker-REASON-7731"
    assert prescreen.consult_answers(c) == {"suicidality": "yes"}


def test_a_booking_joins_the_email_owners_history_only_once_they_confirm(db):
    facilitator_with_hours()
    person = factories.user("participant", email="grace@example.com", password=None)
    c = book(TUE_10, email="  GRACE@Example.com ").consult
    assert c.participant_id is None and c.guest_email == "grace@example.com"
    assert consult_outcomes.consults_for_participant(person) == []
    assert confirm_as_owner(c).participant_id == person.id and c.owner_confirmed_at == NOW
    c2 = confirm_as_owner(book(TUE_10 + timedelta(hours=2), email="grace@example.com").consult)
    assert consult_outcomes.consults_for_participant(person) == [c2, c]
    # No second account; a new address gets exactly one, when its owner confirms (not before).
    created = lambda: db.session.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "user.created")).all()  # noqa: E731
    before = created()
    c3 = book(TUE_10 + timedelta(hours=4), email="ada@example.com", name="  Ada  ").consult
    assert created() == before and c3.participant_id is None
    new_user = db.session.get(User, confirm_as_owner(c3).participant_id)
    assert (new_user.email, new_user.name, new_user.role, new_user.tz) == ("ada@example.com", "Ada", "participant",
                                                                           "America/New_York")
    assert new_user.password_hash is None and new_user.email_verified_at is None and new_user.is_active
    assert created() == [*before, str(new_user.id)]
    assert db.session.scalar(select(func.count()).select_from(User).where(
        User.email.in_(["grace@example.com", "ada@example.com"]))) == 2


def test_any_answer_books_and_only_yes_or_unsure_flags(db):
    facilitator_with_hours()
    calm = book(TUE_10, email="a@example.com", answers={k: "no" for k in prescreen.PRESCREEN_KEYS}).consult
    unsure = book(TUE_10 + timedelta(hours=1), email="b@example.com", answers={"clearance_conditions": "unsure"}).consult
    all_yes = book(TUE_10 + timedelta(hours=2), email="c@example.com",
                   answers={k: True for k in prescreen.PRESCREEN_KEYS}).consult
    assert (calm.flagged, unsure.flagged, all_yes.flagged) == (False, True, True)
    assert prescreen.flags_for(prescreen.consult_answers(all_yes)) == list(prescreen.PRESCREEN_KEYS)


def test_booked_time_and_its_buffer_disappear_from_slots(db):
    facilitator_with_hours()
    day = date(2026, 6, 2)
    before = [s.start for s in free_times.slots_for_dates(day, day, "America/Denver", NOW)]
    assert TUE_10 in before and TUE_10 + timedelta(minutes=30) in before
    book(TUE_10)
    after = [s.start for s in free_times.slots_for_dates(day, day, "America/Denver", NOW)]
    assert TUE_10 not in after
    assert TUE_10 + timedelta(minutes=30) not in after  # inside the 10-minute after-buffer
    assert TUE_10 + timedelta(minutes=60) in after
    assert TUE_10 - timedelta(minutes=30) not in after  # its own after-buffer would run into the 10:00 call
    assert TUE_10 - timedelta(minutes=60) in after


def test_buffer_before_is_respected_too(db):
    facilitator_with_hours(buffer_before_minutes=15, buffer_after_minutes=0)
    book(TUE_10)
    starts = [s.start for s in free_times.slots_for_dates(date(2026, 6, 2), date(2026, 6, 2), "UTC", NOW)]
    # A 10:30 call would block 10:15-11:00, overlapping the 10:00 call's 09:45-10:30: not offered.
    assert TUE_10 + timedelta(minutes=30) not in starts and TUE_10 + timedelta(minutes=60) in starts
    assert TUE_10 - timedelta(minutes=30) not in starts  # 09:30 call ends 10:00, but 10:00 needs 09:45-10:00
    assert TUE_10 - timedelta(minutes=60) in starts


NOT_FREE = [
    (TUE_10 + timedelta(minutes=30), "taken"),  # inside the buffer of the 10:00 call
    (TUE_10, "taken"),
    (NOW + timedelta(hours=2), "too_soon"),  # under 12 h notice
    (datetime(2026, 6, 2, 20, 0, tzinfo=DENVER), "unavailable"),  # outside hours
    (TUE_10 + timedelta(minutes=10), "unavailable"),  # not on the start-time grid
    (TUE_10 + timedelta(days=61), "unavailable"),  # beyond the horizon
]


def test_times_that_are_not_free_are_refused_with_a_reason(db):
    fac = facilitator_with_hours()
    book(TUE_10, email="first@example.com")
    for start, reason in NOT_FREE:
        for fid in (None, fac.id):
            with pytest.raises(free_times.SlotUnavailable) as exc:
                book(start, email="second@example.com", facilitator_id=fid)
            assert (exc.value.reason, exc.value.status) == (reason, 409), start
    assert db.session.scalar(select(User).where(User.email == "second@example.com")) is None


BAD_DETAILS = [
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"email": "not-an-email"}, "email"),
    ({"email": "a@" + "b" * 260 + ".com"}, "email"), ({"phone": "call me maybe"}, "phone"),
    ({"phone": "1" * 41}, "phone"), ({"tz": "Mars/Olympus"}, "timezone"), ({"reason": "x" * 2001}, "reason"),
    ({"heard_from": "x" * 201}, "heard_from"), ({"answers": {"favourite_colour": "blue"}}, "answers"),
    ({"answers": {"psychosis": "maybe"}}, "answers"), ({"answers": ["yes"]}, "answers"),
]


def test_bad_guest_details_are_refused_and_nothing_is_booked(db):
    facilitator_with_hours()
    for kw, field in BAD_DETAILS:
        with pytest.raises(ValidationFailed) as exc:
            book(TUE_10, **kw)
        assert field in exc.value.errors, kw
    assert db.session.scalar(select(Consultation)) is None


def test_past_naive_and_unknown_facilitator_are_refused(db):
    fac = facilitator_with_hours()
    with pytest.raises(ValidationFailed) as exc:
        book(NOW - timedelta(hours=1))
    assert "passed" in exc.value.errors["start"][0]
    with pytest.raises(ValidationFailed):
        book(TUE_10.replace(tzinfo=None))
    other = factories.user("participant", password=None)
    for fid in (999999, other.id):
        with pytest.raises(ValidationFailed) as exc:
            book(TUE_10, facilitator_id=fid)
        assert "facilitator_id" in exc.value.errors
    publishing.update_settings(fac, tz="America/Denver", **{**dict(duration_minutes=30, buffer_before_minutes=0,
                        buffer_after_minutes=10, min_notice_minutes=720, horizon_days=60, daily_cap=None,
                        slot_interval_minutes=30, change_cutoff_hours=24, video_link=None), "accepting_bookings": False})
    with pytest.raises(ValidationFailed):
        book(TUE_10, facilitator_id=fac.id)
    with pytest.raises(free_times.SlotUnavailable):
        book(TUE_10)
    assert db.session.scalar(select(Consultation)) is None


def test_daily_cap(db):
    facilitator_with_hours(daily_cap=2)
    book(TUE_10, email="a@example.com")
    book(TUE_10 + timedelta(hours=2), email="b@example.com")
    tuesday = free_times.slots_for_dates(date(2026, 6, 2), date(2026, 6, 2), "America/Denver", NOW)
    assert tuesday == []
    with pytest.raises(free_times.SlotUnavailable):
        book(TUE_10 + timedelta(hours=4), email="c@example.com")
    assert free_times.slots_for_dates(date(2026, 6, 3), date(2026, 6, 3), "America/Denver", NOW)


def test_round_robin_gives_the_free_facilitator_with_fewest_upcoming_consults(db):
    busy = facilitator_with_hours(name="Busy")
    quiet = facilitator_with_hours(name="Quiet")
    book(TUE_10 + timedelta(days=1), facilitator_id=busy.id, email="x@example.com")
    assert book(TUE_10, email="a@example.com").consult.facilitator_id == quiet.id
    # Now 1 each; tie -> the one booked least recently (busy).
    later = NOW + timedelta(minutes=5)
    assert book(TUE_10 + timedelta(hours=2), email="b@example.com", now=later).consult.facilitator_id == busy.id
    # The only free one gets it even if it has more consults.
    third = book(TUE_10 + timedelta(hours=2), email="c@example.com", now=later).consult
    assert third.facilitator_id == quiet.id
    with pytest.raises(free_times.SlotUnavailable) as exc:
        book(TUE_10 + timedelta(hours=2), email="d@example.com", now=later)
    assert exc.value.reason == "taken"


def test_slots_list_every_free_facilitator(db):
    a = facilitator_with_hours()
    b = facilitator_with_hours(tz="Europe/Berlin", hours="18:00-19:00")  # 10:00-11:00 MDT
    day = date(2026, 6, 2)
    slots = [(s.start, s.facilitator_id) for s in free_times.slots_for_dates(day, day, "America/Denver", NOW)]
    assert (TUE_10, a.id) in slots and (TUE_10, b.id) in slots
    assert all(f == a.id for t, f in slots if t.astimezone(DENVER).hour >= 11)


def test_date_ranges_are_checked(db):
    with pytest.raises(ValidationFailed):
        free_times.slots_for_dates(date(2026, 6, 1), date(2026, 8, 2), "UTC", NOW)  # 63 days
    assert free_times.slots_for_dates(date(2026, 6, 1), date(2026, 8, 1), "UTC", NOW) == []  # 62 days
    with pytest.raises(ValidationFailed):
        free_times.slots_for_dates(date(2026, 6, 2), date(2026, 6, 1), "UTC", NOW)
    with pytest.raises(ValidationFailed):
        free_times.slots_for_dates(date(2026, 6, 1), date(2026, 6, 2), "Not/AZone", NOW)


def test_reschedule_keeps_uid_bumps_sequence_and_moves_reminders(db):
    fac = facilitator_with_hours()
    b = book(TUE_10)
    c = b.consult
    uid = c.calendar_uid
    new_start = TUE_10 + timedelta(days=1, hours=3)
    later = NOW + timedelta(hours=1)
    moved = bookings.reschedule(c, new_start, base_url=BASE_URL, now=later)
    assert moved.consult.id == c.id and c.start_at == new_start and c.sequence == 1 and c.calendar_uid == uid
    assert c.blocked_end == new_start + timedelta(minutes=40)
    pending = {r.dedupe_key: r for r in outbox_rows(db, c) if r.status == "pending"}
    cancelled = {r.dedupe_key for r in outbox_rows(db, c) if r.status == "cancelled"}
    assert {f"consult-{c.id}-s0-reminder-24h", f"consult-{c.id}-s0-reminder-1h",
            f"consult-{c.id}-s0-confirmation"} <= cancelled
    assert pending[f"consult-{c.id}-s1-reminder-24h"].due_at == new_start - timedelta(hours=24)
    assert pending[f"consult-{c.id}-s1-reminder-1h"].due_at == new_start - timedelta(hours=1)
    confirm = pending[f"consult-{c.id}-s1-confirmation"]
    assert confirm.context["event"] == "rescheduled" and sealed.context_of(confirm)["manage_url"] == moved.manage_url
    assert confirm.ics["uid"] == uid and confirm.ics["sequence"] == 1 and confirm.ics["method"] == "REQUEST"
    notice = pending[f"consult-{c.id}-s1-facilitator-rescheduled"]
    assert notice.recipient_user_id == fac.id and notice.context["previous_when"].startswith("Tuesday 2 June")
    # The old link is replaced by the new one.
    with pytest.raises(manage_links.ManageLinkInvalid, match="replaced"):
        manage_links.consult_for_token(b.manage_token, later)
    assert manage_links.consult_for_token(moved.manage_token, later) is c
    # The old time is free again; the new one is not.
    starts = [s.start for s in free_times.free_slots(TUE_10 - timedelta(hours=1), new_start + timedelta(hours=1), later)]
    assert TUE_10 in starts and new_start not in starts


def test_reschedule_within_its_own_buffer(db):
    facilitator_with_hours()
    c = book(TUE_10).consult
    bookings.reschedule(c, TUE_10 + timedelta(minutes=30), base_url=BASE_URL, now=NOW)
    assert c.start_at == TUE_10 + timedelta(minutes=30)


def test_reschedule_refuses_taken_or_invalid_times_and_changes_nothing(db):
    facilitator_with_hours()
    c = book(TUE_10, email="a@example.com").consult
    book(TUE_10 + timedelta(hours=2), email="b@example.com")
    for bad, error in [(TUE_10 + timedelta(hours=2), free_times.SlotUnavailable),
                       (NOW - timedelta(minutes=1), ValidationFailed),
                       (TUE_10, ValidationFailed),
                       (datetime(2026, 6, 2, 22, 0, tzinfo=DENVER), free_times.SlotUnavailable)]:
        with pytest.raises(error):
            bookings.reschedule(c, bad, base_url=BASE_URL, now=NOW)
        assert c.start_at == TUE_10 and c.sequence == 0


def test_cutoff_for_guest_changes(db):
    facilitator_with_hours()
    c = book(TUE_10).consult
    just_before = TUE_10 - timedelta(hours=24, seconds=1)
    at_cutoff = TUE_10 - timedelta(hours=24)
    assert manage_links.can_change(c, just_before) and not manage_links.can_change(c, at_cutoff)
    with pytest.raises(Conflict, match="too close"):
        bookings.reschedule(c, TUE_10 + timedelta(days=2), base_url=BASE_URL, now=at_cutoff)
    with pytest.raises(Conflict, match="too close"):
        bookings.cancel(c, by="guest", base_url=BASE_URL, now=at_cutoff)
    assert c.status == "booked"


def test_cancel_frees_the_time_cancels_reminders_and_sends_cancel_invite(db):
    fac = facilitator_with_hours()
    b = book(TUE_10)
    c = b.consult
    bookings.cancel(c, by="guest", base_url=BASE_URL, now=NOW)
    assert c.status == "cancelled" and c.sequence == 1 and c.cancelled_by == "guest"
    rows = outbox_rows(db, c)
    assert all(r.status == "cancelled" for r in rows if r.template in ("consult_reminder", "consult_confirmation"))
    cancel_mail = next(r for r in rows if r.template == "consult_cancelled")
    assert cancel_mail.ics["method"] == "CANCEL" and cancel_mail.ics["uid"] == c.calendar_uid
    assert cancel_mail.ics["sequence"] == 1 and cancel_mail.status == "pending"
    cal = Calendar.from_ical(build_calendar(cancel_mail.ics))
    assert str(cal["method"]) == "CANCEL"
    notice = next(r for r in rows if r.template == "consult_facilitator_notice" and r.context["event"] == "cancelled")
    assert notice.recipient_user_id == fac.id and notice.ics["method"] == "CANCEL"
    # Idempotent, and the time can be booked again.
    bookings.cancel(c, by="guest", base_url=BASE_URL, now=NOW)
    assert len(outbox_rows(db, c)) == len(rows)
    assert book(TUE_10, email="next@example.com").consult.start_at == TUE_10
    # A cancelled consult can't be moved.
    with pytest.raises(Conflict):
        bookings.reschedule(c, TUE_10 + timedelta(days=1), base_url=BASE_URL, now=NOW)


def test_facilitator_may_cancel_inside_the_cutoff_but_nobody_else(db):
    fac = facilitator_with_hours()
    other = facilitator_with_hours()
    c = book(TUE_10, facilitator_id=fac.id).consult
    with pytest.raises(PermissionDenied):
        bookings.cancel(c, by="facilitator", actor=other, base_url=BASE_URL, now=TUE_10 - timedelta(hours=2))
    bookings.cancel(c, by="facilitator", actor=fac, base_url=BASE_URL, now=TUE_10 - timedelta(hours=2))
    mail = next(r for r in outbox_rows(db, c) if r.template == "consult_cancelled")
    assert mail.context["cancelled_by"] == "facilitator"


def test_manage_token_tampered_expired_or_unknown(db):
    facilitator_with_hours()
    b = book(TUE_10)
    assert manage_links.consult_for_token(b.manage_token, NOW) is b.consult
    head, sig = b.manage_token.rsplit(".", 1)
    for bad in (head + "." + sig[::-1], head[:-2] + "." + sig, "", "x" * 600, "not-a-token", b.manage_token + "x"):
        with pytest.raises(manage_links.ManageLinkInvalid):
            manage_links.consult_for_token(bad, NOW)
    expiry = b.consult.end_at + timedelta(days=7)
    with pytest.raises(manage_links.ManageLinkExpired) as exc:
        manage_links.consult_for_token(b.manage_token, expiry)
    assert exc.value.status == 410
    assert manage_links.consult_for_token(b.manage_token, expiry - timedelta(seconds=1)) is b.consult


def test_manage_links_name_the_calendar_uid_and_links_naming_the_id_still_work(db):
    """Tokens name the consult by its calendar UID (known before the row is written, so the booking
    writes the token's hash with the row); links already emailed name its id and keep working."""
    facilitator_with_hours()
    b = book(TUE_10)
    c = b.consult
    payload = manage_links.link_serializer().loads(b.manage_token)
    assert payload["u"] == c.calendar_uid and "c" not in payload
    expires = int((c.end_at + timedelta(days=7)).timestamp())
    old = manage_links.link_serializer().dumps({"c": c.id, "n": "older-style", "e": expires})
    c.manage_token_hash = hash_token(old)  # as if issued before the change
    db.session.flush()
    assert manage_links.consult_for_token(old, NOW) is c
    with pytest.raises(manage_links.ManageLinkInvalid, match="replaced"):
        manage_links.consult_for_token(b.manage_token, NOW)  # the hash no longer matches
    for payload in ({"u": "consult-unknown@retreat", "n": "x", "e": expires}, {"u": 5, "n": "x", "e": expires},
                    {"n": "x", "e": expires}, {"u": c.calendar_uid, "n": "x", "e": "later"}):
        with pytest.raises(manage_links.ManageLinkInvalid):
            manage_links.consult_for_token(manage_links.link_serializer().dumps(payload), NOW)


def test_outcome_recording(db):
    fac = facilitator_with_hours()
    other = facilitator_with_hours()
    c = book(TUE_10).consult
    with pytest.raises(Conflict, match="once the call has started"):
        consult_outcomes.record_outcome(c, facilitator=fac, outcome="completed", recommended_cohort=None, notes=None, now=NOW)
    after = TUE_10 + timedelta(minutes=40)
    with pytest.raises(PermissionDenied):
        consult_outcomes.record_outcome(c, facilitator=other, outcome="completed", recommended_cohort=None, notes=None, now=after)
    with pytest.raises(ValidationFailed):
        consult_outcomes.record_outcome(c, facilitator=fac, outcome="cured", recommended_cohort=None, notes=None, now=after)
    with pytest.raises(ValidationFailed):
        consult_outcomes.record_outcome(c, facilitator=fac, outcome="completed", recommended_cohort="x" * 201, notes=None, now=after)
    consult_outcomes.record_outcome(c, facilitator=fac, outcome="completed", recommended_cohort="Colorado, September",
                       notes="Marker-NOTES-5521 good fit", now=after)
    assert c.status == "completed" and c.recommended_cohort == "Colorado, September"
    assert prescreen.consult_outcome_notes(c) == "Marker-NOTES-5521 good fit"
    db.session.flush()
    raw = db.session.execute(text("SELECT outcome_notes_encrypted FROM consultations WHERE id = :i"),
                             {"i": c.id}).scalar_one()
    assert "Marker-NOTES" not in raw
    consult_outcomes.record_outcome(c, facilitator=fac, outcome="no_show", recommended_cohort="ignored", notes=None, now=after)
    assert c.status == "no_show" and c.recommended_cohort is None
    # A completed consult still holds its time.
    assert free_times.free_slots(TUE_10, TUE_10 + timedelta(minutes=1), NOW, facilitator_ids=[fac.id]) == []


def test_facilitator_lists_put_flagged_first(db):
    fac = facilitator_with_hours()
    plain = book(TUE_10, email="a@example.com").consult
    flagged = book(TUE_10 + timedelta(days=1), email="b@example.com", answers={"psychosis": "yes"}).consult
    gone = book(TUE_10 + timedelta(hours=2), email="c@example.com").consult
    bookings.cancel(gone, by="guest", base_url=BASE_URL, now=NOW)
    lists = consult_outcomes.facilitator_consults(fac, NOW)
    assert lists["upcoming"] == [flagged, plain] and lists["cancelled"] == [gone] and lists["past"] == []
    later = TUE_10 + timedelta(days=3)
    lists = consult_outcomes.facilitator_consults(fac, later)
    assert lists["past"] == [flagged, plain] and lists["upcoming"] == []


def test_weekly_rules_and_overrides_editing(db):
    fac = factories.user("facilitator", password=None)
    parsed = publishing.set_weekly_rules(fac, {0: "9-12, 13:00 - 17:00", 1: "13:00-17:00, 09:00-12:30, 12:00-13:30",
                                        4: "20:00-24:00"})
    assert parsed[0] == [(540, 720), (780, 1020)] and parsed[1] == [(540, 1020)] and parsed[4] == [(1200, 1440)]
    assert publishing.format_windows(publishing.weekly_rules(fac)[0]) == "09:00-12:00, 13:00-17:00"
    for bad in ("9-8", "25:00-26:00", "nine to five", "09:00-24:30", "09:61-10:00", "24:00-24:00"):
        with pytest.raises(ValidationFailed) as exc:
            publishing.set_weekly_rules(fac, {2: bad})
        assert "day_2" in exc.value.errors
    assert publishing.weekly_rules(fac)[0] == [(540, 720), (780, 1020)]  # unchanged
    o = publishing.add_override(fac, day=date(2026, 6, 3), kind="blocked", start="10:00", end="11:00", note="Dentist", now=NOW)
    publishing.add_override(fac, day=date(2026, 6, 4), kind="off", now=NOW)
    for kw in ({"day": date(2026, 5, 1), "kind": "off"}, {"day": date(2026, 6, 5), "kind": "extra", "start": "12:00",
               "end": "11:00"}, {"day": date(2026, 6, 5), "kind": "extra"}, {"day": None, "kind": "off"},
               {"day": date(2026, 6, 5), "kind": "holiday"}, {"day": date(2026, 6, 5), "kind": "off", "note": "x" * 201}):
        with pytest.raises(ValidationFailed):
            publishing.add_override(fac, now=NOW, **kw)
    assert [x.day for x in publishing.upcoming_overrides(fac, NOW)] == [date(2026, 6, 3), date(2026, 6, 4)]
    other = factories.user("facilitator", password=None)
    with pytest.raises(NotFound):
        publishing.delete_override(other, o.id)
    publishing.delete_override(fac, o.id)
    assert [x.day for x in publishing.upcoming_overrides(fac, NOW)] == [date(2026, 6, 4)]
    with pytest.raises(PermissionDenied):
        publishing.set_weekly_rules(factories.user("participant", password=None), {0: "09:00-10:00"})


def test_settings_validation(db):
    fac = factories.user("facilitator", password=None)
    with pytest.raises(ValidationFailed) as exc:
        publishing.update_settings(fac, tz="Nowhere/Land", duration_minutes=5, buffer_before_minutes=-1,
                            buffer_after_minutes=0, min_notice_minutes=0, horizon_days=0, daily_cap=0,
                            slot_interval_minutes=30, change_cutoff_hours=24, video_link="javascript:alert(1)",
                            accepting_bookings=True)
    assert {"tz", "duration_minutes", "buffer_before_minutes", "horizon_days", "daily_cap",
            "video_link"} <= set(exc.value.errors)
    assert publishing.get_settings(fac) is None


def test_week_preview_shows_hours_overrides_bookings_and_free_times(db):
    fac = facilitator_with_hours(hours="09:00-11:00", days=range(5))
    publishing.add_override(fac, day=date(2026, 6, 3), kind="off", note="Holiday", now=NOW)
    c = book(TUE_10).consult
    days = publishing.week_preview(fac, date(2026, 6, 1), NOW)
    assert [d.day.weekday() for d in days] == list(range(7))
    mon, tue, wed = days[0], days[1], days[2]
    assert mon.free == []  # under 12 h notice
    assert tue.consults == [c] and tue.free == [TUE_10 - timedelta(hours=1)]  # 09:30 and 10:30 collide with buffers
    assert wed.off and wed.windows == [] and wed.notes == ["Day off (Holiday)"]
    assert days[5].windows == [] and days[5].free == []


def test_demo_seed_gives_the_facilitator_weekday_availability(db):
    fac = factories.user("facilitator", email="facilitator@demo.retreat", password=None)  # as seed() creates it
    demo.seed_consult_availability()
    demo.seed_consult_availability()  # idempotent
    assert publishing.get_settings(fac).tz == "America/Denver"
    assert set(publishing.weekly_rules(fac)) == {0, 1, 2, 3, 4}
    monday = date(2026, 6, 1)
    slots = free_times.slots_for_dates(monday, monday + timedelta(days=13), "America/Denver", NOW)
    days = {s.start.astimezone(DENVER).date() for s in slots}
    assert days and all(d.weekday() < 5 for d in days)
    assert len(days) == 9  # Tue..Fri and the next week's Mon..Fri (Monday itself is under 12 h notice)


def test_email_templates_render_from_the_queued_context(app, db):
    facilitator_with_hours()
    c = book(TUE_10).consult
    bookings.reschedule(c, TUE_10 + timedelta(days=1), base_url=BASE_URL, now=NOW)
    bookings.cancel(c, by="guest", base_url=BASE_URL, now=NOW)
    seen = set()
    for row in outbox_rows(db, c):
        for ext in ("txt", "html"):
            tmpl = app.jinja_env.get_template(f"emails/{row.template}.{ext}")
            crisis = shows_crisis(row.template, row.context)  # the guest's emails, not the facilitator's
            variables = {**row.context, "practice_name": "Open Meadow Retreats", "unsubscribe_url": None,
                         "subject": "s", "show_crisis": crisis}
            body = tmpl.render(**variables)
            assert row.context["guest_name"] in body and ("988" in body) == crisis
            if ext == "txt":
                subject = "".join(tmpl.blocks["subject"](tmpl.new_context(variables))).strip()
                assert subject and "\n" not in subject
                seen.add((row.template, row.context["event"], subject.split(":")[0]))
    assert {t for t, _, _ in seen} == {"consult_confirmation", "consult_reminder", "consult_cancelled",
                                       "consult_facilitator_notice"}
