"""The slots API caches its answer per facilitator version and minute: every change to free times
(a booking, a cancellation, new hours, a day off, other settings) shows at once, and a slot served
from the cache can never be booked twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from retreat.consults import booking as bookings
from retreat.consults import publishing
from retreat.consults import slots as free_times
from retreat.models import Consultation
from retreat.timeutil import now_utc
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator, facilitator_with_hours

SLOTS = "/api/v1/consultations/slots"
BOOK = "/api/v1/consultations"


def _slots(client, days: int = 3, **extra) -> list[str]:
    today = now_utc().date()
    r = client.get(SLOTS, query_string={"start": (today + timedelta(days=1)).isoformat(),
                                        "end": (today + timedelta(days=days)).isoformat(), "tz": "UTC", **extra})
    assert r.status_code == 200
    return [s["start"] for s in r.get_json()["slots"]]


def _book(client, start: str, email: str):
    return client.post(BOOK, json={"start": start, "name": "Grace Guest", "email": email, "timezone": "UTC",
                                   "answers": {"pregnancy": "no"}})


def test_a_booking_removes_its_slot_from_the_cached_answer(client, db):
    around_the_clock_facilitator()
    free_times.clear_slot_cache()
    first = _slots(client)
    assert _slots(client) == first  # served again (from the cache)
    wanted = first[10]
    assert _book(client, wanted, "a@example.com").status_code == 201
    after = _slots(client)
    assert wanted not in after and len(after) < len(first)


def test_a_cached_slot_cannot_be_booked_twice(client, db):
    around_the_clock_facilitator()
    free_times.clear_slot_cache()
    wanted = _slots(client)[4]
    assert _book(client, wanted, "a@example.com").status_code == 201
    again = _book(client, wanted, "b@example.com")  # someone still looking at the old list
    assert again.status_code == 409 and again.get_json()["reason"] == "taken"
    assert db.session.scalar(select(func.count(Consultation.id))) == 1


def test_cancelling_frees_the_slot_again(client, db):
    fac = around_the_clock_facilitator()
    free_times.clear_slot_cache()
    wanted = _slots(client)[6]
    assert _book(client, wanted, "a@example.com").status_code == 201
    assert wanted not in _slots(client)
    consult = db.session.scalar(select(Consultation))
    bookings.cancel(consult, by="facilitator", actor=fac, base_url=BASE_URL, now=now_utc())
    db.session.commit()
    assert wanted in _slots(client)


def test_new_hours_a_day_off_and_settings_show_at_once(client, db):
    fac = facilitator_with_hours(tz="UTC", hours="09:00-10:00", min_notice_minutes=60)
    free_times.clear_slot_cache()
    before = _slots(client)
    assert before and all("T09:" in s for s in before)
    publishing.set_weekly_rules(fac, {d: "09:00-10:00, 14:00-15:00" for d in range(7)})
    db.session.commit()
    widened = _slots(client)
    assert any("T14:" in s for s in widened)
    day = (now_utc() + timedelta(days=2)).date()
    publishing.add_override(fac, day=day, kind="off", now=now_utc())
    db.session.commit()
    assert not any(s.startswith(day.isoformat()) for s in _slots(client))
    settings = publishing.get_settings(fac)
    publishing.update_settings(fac, tz="UTC", duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=0,
                        min_notice_minutes=60, horizon_days=60, daily_cap=None, slot_interval_minutes=30,
                        change_cutoff_hours=24, video_link=None, accepting_bookings=False)
    db.session.commit()
    assert settings.accepting_bookings is False and _slots(client) == []


def test_only_writes_that_change_free_times_bump_the_version(db):
    fac = around_the_clock_facilitator()
    v0 = free_times.slots_versions(fac.id)
    publishing.get_settings(fac).video_link = "https://video.example.com/new-room"
    db.session.flush()
    assert free_times.slots_versions(fac.id) == v0  # the video link does not change free times
    start = free_times.next_free_slots(now_utc() + timedelta(hours=3), now_utc(), limit=1)[0].start
    bookings.book(start=start, facilitator_id=fac.id, name="Grace Guest", email="g@example.com", phone=None, tz="UTC",
             base_url=BASE_URL, now=now_utc(), answers={})
    db.session.flush()
    (_, v1, _), = free_times.slots_versions(fac.id)
    assert v1 > v0[0][1]


def test_a_long_answer_goes_gzipped_to_clients_that_accept_it_and_the_cached_gzip_follows_bookings(client, db):
    import gzip
    import json

    around_the_clock_facilitator()
    free_times.clear_slot_cache()
    today = now_utc().date()
    q = {"start": (today + timedelta(days=1)).isoformat(), "end": (today + timedelta(days=5)).isoformat(), "tz": "UTC"}
    plain = client.get(SLOTS, query_string=q)
    packed = client.get(SLOTS, query_string=q, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in plain.headers["Vary"] and "Accept-Encoding" in packed.headers["Vary"]
    assert json.loads(gzip.decompress(packed.get_data())) == plain.get_json()
    assert len(packed.get_data()) * 5 < len(plain.get_data())
    refused = client.get(SLOTS, query_string=q, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    wanted = plain.get_json()["slots"][3]["start"]
    assert _book(client, wanted, "gz@example.com").status_code == 201
    after = json.loads(gzip.decompress(client.get(SLOTS, query_string=q,
                                                  headers={"Accept-Encoding": "gzip"}).get_data()))
    assert wanted not in [s["start"] for s in after["slots"]]
    empty = client.get(SLOTS, query_string={**q, "facilitator_id": 987654}, headers={"Accept-Encoding": "gzip"})
    assert empty.status_code in (200, 422) and "Content-Encoding" not in empty.headers  # too short to pack


def _version(fac_id: int) -> int:
    from retreat.extensions import db
    from retreat.models import ConsultSettings

    return db.session.scalar(select(ConsultSettings.slots_version).where(ConsultSettings.facilitator_id == fac_id))


def test_a_booking_bumps_the_version_once_and_a_refusal_not_at_all(client, db):
    """On PostgreSQL the UPDATE that locks the settings row bumps the version, and the after-flush hook
    does not bump it again; a refused booking is rolled back with its bump."""
    fac = around_the_clock_facilitator()
    other = around_the_clock_facilitator()
    v0, w0 = _version(fac.id), _version(other.id)
    wanted = _slots(client, facilitator_id=fac.id)[3]
    body = {"start": wanted, "facilitator_id": fac.id, "name": "Grace Guest", "email": "a@example.com",
            "timezone": "UTC"}
    assert client.post(BOOK, json=body).status_code == 201
    assert (_version(fac.id), _version(other.id)) == (v0 + 1, w0)
    again = client.post(BOOK, json={**body, "email": "b@example.com"})
    assert again.status_code == 409 and again.get_json()["reason"] == "taken"
    too_soon = client.post(BOOK, json={**body, "start": (now_utc() + timedelta(minutes=5)).isoformat()})
    assert too_soon.status_code == 409
    assert (_version(fac.id), _version(other.id)) == (v0 + 1, w0)


def test_a_bump_rolled_back_with_its_savepoint_is_not_relied_on(db):
    """After the locking UPDATE's savepoint is rolled back, the next change to free times in the same
    transaction is bumped by the hook again (so a cached list can never outlive it)."""
    from retreat.extensions import db as _db

    fac = around_the_clock_facilitator()
    v0 = _version(fac.id)
    try:
        with _db.session.begin_nested():
            settings, _ = bookings._lock_facilitator(fac.id)
            assert settings is not None
            raise RuntimeError("refused")
    except RuntimeError:
        pass
    assert _version(fac.id) == v0
    publishing.set_weekly_rules(fac, {d: "08:00-20:00" for d in range(7)})
    _db.session.flush()
    assert _version(fac.id) > v0
