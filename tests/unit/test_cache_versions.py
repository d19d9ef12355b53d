"""Roster versions (retreat.core.cache_versions): every committed change to what a cohort's roster
shows raises that cohort's version; unrelated writes and rolled-back ones do not; on PostgreSQL,
the bump never deadlocks with the seat lock and a reader that sees the new version sees the data."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from retreat.accounts import users as accounts
from retreat.cohorts import catalog as cohort_svc
from retreat.cohorts import enrollment, preparation, seats
from retreat.core.cache_versions import roster_version
from retreat.core.crypto import encrypt_field
from retreat.extensions import db as _db
from retreat.models import ChecklistItem, ConsentDocument, JournalEntry
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import is_postgres


@pytest.fixture()
def world(db):
    c, other = fc.cohort(), fc.cohort()
    enr = fc.applicant(c)
    fc.applicant(other)
    db.session.commit()
    return c, other, enr


def _versions(*cohorts) -> tuple[int, ...]:
    return tuple(roster_version(c.id) for c in cohorts)


def test_changes_to_what_the_roster_shows_raise_only_that_cohorts_version(world):
    c, other, enr = world
    fac = factories.user("facilitator", password=None)
    _db.session.commit()
    now = now_utc()
    changes = [
        ("a note", lambda: cohort_svc.add_note(enr, body="Vegetarian", actor=fac, now=now)),
        ("a status", lambda: enrollment.submit_intake(enr, now=now, actor=None)),
        ("a checklist item", lambda: preparation.complete(enr, "ride_home", driver_name="My sister",
                                                                          driver_phone="+1 303 555 0100", now=now)),
        ("the participant's name", lambda: setattr(enr.participant, "name", "Renamed Person")),
        ("a session", lambda: cohort_svc.add_session(
            c, kind="orientation", title="Orientation call", starts_at=c.starts_at - timedelta(days=3),
            ends_at=c.starts_at - timedelta(days=3, hours=-1), location="", video_url="", facilitator_id=None,
            actor=fac, now=now)),
        ("the cohort", lambda: setattr(c, "title", "Renamed cohort")),
        ("its retreat", lambda: setattr(c.retreat, "title", "Renamed retreat")),
    ]
    for label, change in changes:
        before_c, before_other = _versions(c, other)
        change()
        _db.session.commit()
        after_c, after_other = _versions(c, other)
        assert after_c > before_c, label
        assert after_other == before_other, label


def test_unrelated_and_rolled_back_writes_change_nothing(world):
    c, other, enr = world
    before = _versions(c, other)
    _db.session.add(JournalEntry(participant_id=enr.participant_id, realm="self", text_enc=encrypt_field("x"),
                                 created_at=now_utc(), updated_at=now_utc()))
    enr.participant.tz = "Europe/Berlin"  # not shown on the roster
    _db.session.commit()
    assert _versions(c, other) == before
    accounts.guest_account(email=f"guest{factories.n()}@example.com", name="Grace Guest", tz="UTC")  # a booking's
    _db.session.commit()
    assert _versions(c, other) == before
    enr.lodging = "Cabin 4"
    _db.session.flush()
    _db.session.rollback()
    _db.session.add(JournalEntry(participant_id=enr.participant_id, realm="self", text_enc=encrypt_field("y"),
                                 created_at=now_utc(), updated_at=now_utc()))
    _db.session.commit()
    assert _versions(c, other) == before


def test_writes_no_cohort_can_be_named_for_raise_every_version(world):
    c, other, enr = world
    before = _versions(c, other)
    _db.session.add(ConsentDocument(kind="waiver", version=7, title="Waiver", body="Terms " * 10, sha256="1" * 64,
                                    is_active=True))
    _db.session.commit()
    middle = _versions(c, other)
    assert all(m > b for m, b in zip(middle, before, strict=True))
    _db.session.execute(update(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id)
                        .values(completed_at=now_utc()))
    _db.session.commit()
    assert all(a > m for a, m in zip(_versions(c, other), middle, strict=True))


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_concurrent_seat_holds_and_roster_writes_never_deadlock(committing_app):
    """Seat holds lock the cohort, then write an enrollment; notes and status changes write
    enrollment rows; all of them bump the same counter at commit. 8 threads, 160 transactions."""
    with committing_app.app_context():
        c = fc.cohort(capacity=40, starts_at=now_utc() + timedelta(days=30))
        people = [fc.applicant(c, now=now_utc()) for _ in range(40)]
        fac = factories.user("facilitator", password=None)
        _db.session.commit()
        ids, cohort_id, fac_id = [e.id for e in people], c.id, fac.id
        start = roster_version(cohort_id)
        _db.session.remove()

    errors, done = [], []
    barrier = threading.Barrier(8)

    def worker(k: int):
        from retreat.models import Enrollment, User

        with committing_app.app_context():
            barrier.wait()
            for n in range(20):
                enr_id = ids[(k * 5 + n) % len(ids)]
                try:
                    enr = _db.session.get(Enrollment, enr_id)
                    if k % 2 == 0 and n % 4 == 0:
                        seats.take_hold(enr, now=now_utc(), actor=enr.participant)
                    else:
                        cohort_svc.add_note(enr, body=f"note {k}-{n}", actor=_db.session.get(User, fac_id),
                                            now=now_utc())
                        enr.lodging = f"Cabin {k}"
                    _db.session.commit()
                    done.append(1)
                except Exception as exc:  # noqa: BLE001 - a domain refusal is fine, a deadlock is not
                    _db.session.rollback()
                    if "deadlock" in str(exc).lower() or "Deadlock" in type(exc).__name__:
                        errors.append(exc)
                    else:
                        done.append(0)
            _db.session.remove()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(done) == 160
    with committing_app.app_context():
        assert roster_version(cohort_id) >= start + sum(done)  # each committed change was counted
        _db.session.remove()


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_a_reader_that_sees_the_new_version_sees_the_new_data(committing_app):
    """A writer commits a new lodging while readers poll (version, lodging): no reader ever sees the
    new version with the old lodging (which would cache old data under the new key)."""
    from retreat.models import Enrollment

    with committing_app.app_context():
        c = fc.cohort()
        enr = fc.applicant(c)
        _db.session.commit()
        cohort_id, enr_id, v0 = c.id, enr.id, roster_version(c.id)
        _db.session.remove()

    stop, bad, seen = threading.Event(), [], []

    def reader():
        with committing_app.app_context():
            while not stop.is_set():
                version = roster_version(cohort_id)
                lodging = _db.session.get(Enrollment, enr_id, populate_existing=True).lodging
                _db.session.rollback()
                seen.append(version)
                if version > v0 and lodging != "Cabin 9":
                    bad.append((version, lodging))
            _db.session.remove()

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    with committing_app.app_context():
        e = _db.session.get(Enrollment, enr_id)
        e.lodging = "Cabin 9"
        _db.session.commit()
        _db.session.remove()
    threading.Event().wait(0.3)
    stop.set()
    for t in readers:
        t.join(10)
    assert not bad, bad[:3]
    assert max(seen) > v0


def test_the_finance_counter_follows_new_ledger_entries_and_cohort_changes_only(world):
    from retreat.core.cache_versions import finance_version
    from retreat.payments import ledger
    from retreat.payments.models import LedgerType

    c, other, enr = world
    v0 = finance_version()
    enr.lodging = "Cabin 2"  # a roster change, not a finance one
    _db.session.commit()
    assert finance_version() == v0
    with _db.session.begin_nested():  # as the ledger writes: the savepoint's release bumps nothing yet
        ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=100, currency="USD",
                      object_id=f"pi_cv_{factories.n()}", now=now_utc())
    assert finance_version() == v0
    _db.session.commit()
    v1 = finance_version()
    assert v1 > v0
    other.title = "Renamed for the reports"
    _db.session.commit()
    assert finance_version() > v1
