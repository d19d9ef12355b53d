"""Two tabs save the same journal entry at the same moment from the same version: exactly one text
is kept, the other tab is told and overwrites nothing (PostgreSQL, real threads)."""

import threading

import pytest

from retreat.extensions import db as _db
from retreat.integration import journal
from retreat.integration.journal_models import JournalEntry
from retreat.models import User
from tests import factories_clearance as fcl
from tests.conftest import is_postgres
from tests.factories_cohorts import NOW


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_two_simultaneous_saves_of_one_version_one_wins(committing_app):
    app = committing_app
    with app.app_context():
        s = fcl.setup(now=NOW)
        entry = journal.create(s.participant, realm="mind", prompt_key=None, text="first draft",
                               enrollment_id=s.enrollment.id, now=NOW)
        ids = {"entry": entry.id, "user": s.participant.id, "enr": s.enrollment.id}
        _db.session.commit()

    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def worker(text):
        with app.app_context():
            try:
                user = _db.session.get(User, ids["user"])
                e = _db.session.get(JournalEntry, ids["entry"])
                barrier.wait()
                journal.update_entry(user, e, expected_version=1, realm="mind", prompt_key=None, text=text,
                                     enrollment_id=ids["enr"], now=NOW)
                _db.session.commit()
                results[text] = "saved"
            except journal.StaleEntry:
                _db.session.rollback()
                results[text] = "stale"
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("tab A text", "tab B text")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == ["saved", "stale"]
    winner = next(t for t, r in results.items() if r == "saved")
    with app.app_context():
        e = _db.session.get(JournalEntry, ids["entry"])
        assert e.version == 2 and journal.open_entry(e).text == winner
