"""Two clinicians write on one person at once, against PostgreSQL that really commits: every entry
either lands or is refused as stale (409); none is lost, versions never repeat, replays are stored once."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select

from retreat.clinical import dosing, staffing
from retreat.clinical.dosing_models import DosingEntry, DosingRecord
from retreat.extensions import db
from retreat.models import User
from tests import factories_cohorts as fc
from tests.conftest import is_postgres
from tests.factories_cohorts import NOW
from tests.unit.test_dosing_staffing import _clinician, _setup

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real row locks need PostgreSQL")


def _prepare(app):
    with app.app_context():
        org, lead, s = _setup()
        a, b = _clinician(org), _clinician(org)
        staffing.assign(s, a, actor=lead)
        staffing.assign(s, b, actor=lead)
        rec = dosing.record_for(s, fc.cleared(s.cohort))
        dosing.write(rec, "check_in", {"override_reason": "race test"}, idempotency_key=str(uuid.uuid4()), expected_version=1, actor=a, now=NOW)
        db.session.commit()
        return rec.id, a.id, b.id


def _run(app, rec_id, jobs):
    """Each job (user id, key, expected version or None for "read it fresh") in its own thread."""
    outcomes, barrier = [], threading.Barrier(len(jobs))

    def worker(uid, key, version):
        with app.app_context():
            try:
                rec = db.session.get(DosingRecord, rec_id)
                actor = db.session.get(User, uid)
                expected = rec.version if version is None else version
                barrier.wait()
                r = dosing.write(rec, "note", {"note": f"by {uid}"}, idempotency_key=key,
                                 expected_version=expected, actor=actor, now=NOW)
                db.session.commit()
                outcomes.append(("replay" if r.replayed else "stored", r.entry.version_after))
            except dosing.StaleWrite as exc:
                db.session.rollback()
                outcomes.append(("stale", exc.current_version))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_clinicians_at_once_one_lands_the_other_is_told_nothing_is_lost(committing_app):
    rec_id, a, b = _prepare(committing_app)
    for _ in range(5):
        out = _run(committing_app, rec_id, [(a, str(uuid.uuid4()), None), (b, str(uuid.uuid4()), None)])
        kinds = sorted(k for k, _ in out)
        # both read the same version: exactly one is stored, the other is refused as stale
        assert kinds == ["stale", "stored"], out
    with committing_app.app_context():
        entries = list(db.session.scalars(select(DosingEntry).where(DosingEntry.record_id == rec_id)))
        versions = [e.version_after for e in entries]
        assert len(entries) == 1 + 5  # the check-in and one note per round: every stored write is there
        assert len(versions) == len(set(versions))  # no two writes produced one version
        assert db.session.get(DosingRecord, rec_id).version == max(versions)


def test_the_same_entry_sent_by_two_replays_at_once_is_stored_once(committing_app):
    rec_id, a, _ = _prepare(committing_app)
    key = str(uuid.uuid4())
    out = _run(committing_app, rec_id, [(a, key, 2)] * 4)
    assert sorted(k for k, _ in out) == ["replay", "replay", "replay", "stored"]
    with committing_app.app_context():
        assert len(list(db.session.scalars(select(DosingEntry).where(DosingEntry.idempotency_key == key)))) == 1
