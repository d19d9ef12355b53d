"""Two providers of the organisation decide the same request at the same moment: exactly one
decision is recorded, the other gets the clear "already decided" message (PostgreSQL, real threads)."""

import threading

import pytest

from retreat.clinical import clearance
from retreat.clinical.models import ClearanceRequest
from retreat.cohorts.models import Enrollment
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.errors import Conflict
from retreat.extensions import db as _db
from tests import factories
from tests import factories_clearance as fcl
from tests.conftest import is_postgres
from tests.factories_cohorts import NOW


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_two_simultaneous_decisions_one_wins(committing_app):
    app = committing_app
    with app.app_context():
        s = fcl.setup(now=NOW)
        colleague = factories.user("provider", org=s.org, password=None)
        req = fcl.submit(s)
        ids = {"req": req.id, "providers": [s.provider.id, colleague.id], "enr": s.enrollment.id}
        _db.session.commit()

    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def worker(provider_id, decision):
        with app.app_context():
            try:
                from retreat.models import User

                provider = _db.session.get(User, provider_id)
                request = _db.session.get(ClearanceRequest, ids["req"])
                barrier.wait()
                clearance.decide(request, provider, decision=decision, attestation_name=provider.name,
                                 expected_version=1, now=NOW)
                _db.session.commit()
                outcomes[provider_id] = decision
            except Conflict as exc:
                _db.session.rollback()
                outcomes[provider_id] = f"conflict: {exc.message}"
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(pid, d))
               for pid, d in zip(ids["providers"], ["cleared", "not_cleared"], strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 2
    conflicts = [o for o in outcomes.values() if o.startswith("conflict")]
    assert len(conflicts) == 1 and "already decided" in conflicts[0]
    winner = next(o for o in outcomes.values() if not o.startswith("conflict"))
    with app.app_context():
        req = _db.session.get(ClearanceRequest, ids["req"])
        enr = _db.session.get(Enrollment, ids["enr"])
        assert req.decision == winner and req.version == 2
        assert enr.status == (S.CLEARED if winner == "cleared" else S.NOT_CLEARED)
