"""Real threads on PostgreSQL against localstripe: several scheduler processes running the
automatic-installment job at the same moment charge each due installment exactly once (one
attempt row, one PaymentIntent at localstripe), because the attempt is written and committed under
the enrollment's lock before Stripe is called."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from retreat.extensions import db as _db
from retreat.payments import autopay_charges
from retreat.payments.autopay_models import AutopayAttempt, AutopayMandate
from tests import autopay_helpers as ah
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
PEOPLE, WORKERS, ROUNDS = 4, 4, 2


def test_concurrent_job_runs_charge_each_due_installment_once(committing_app, localstripe):
    app = committing_app
    app.config["STRIPE_API_BASE"] = localstripe
    with app.app_context():
        firsts = []
        for _ in range(PEOPLE):
            enr, plan = ah.on_plan(2)
            ah.save_card(enr)
            firsts.append((plan[0].id, plan[0].due_on, enr.cohort.timezone))
        _db.session.commit()
        moment = ah.at(max(d for _, d, _ in firsts), 10, firsts[0][2])
        _db.session.remove()
    errors: list[BaseException] = []
    statuses: list[str] = []
    lock = threading.Lock()

    def worker(barrier):
        with app.app_context():
            try:
                barrier.wait()
                got = autopay_charges.charge_due(moment)
                with lock:
                    statuses.extend(o.status for o in got)
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)
                _db.session.rollback()
            finally:
                _db.session.remove()

    for _ in range(ROUNDS):
        barrier = threading.Barrier(WORKERS)
        threads = [threading.Thread(target=worker, args=(barrier,)) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert statuses == ["succeeded"] * PEOPLE  # across all workers and rounds
    with app.app_context():
        attempts = _db.session.scalars(select(AutopayAttempt)).all()
        per_installment = Counter(a.installment_id for a in attempts)
        assert set(per_installment) == {i for i, _, _ in firsts} and set(per_installment.values()) == {1}
        intents = ah.intents_for([a.id for a in attempts])
        assert len(intents) == PEOPLE and {pi["status"] for pi in intents} == {"succeeded"}
        # every PaymentIntent localstripe holds for these people's saved cards, however it was made
        customers = set(_db.session.scalars(select(AutopayMandate.stripe_customer_id)))
        ours = [pi for pi in ah.gateway.list_payment_intents(100) if pi["customer"] in customers]
        assert len(ours) == PEOPLE
