"""localstripe's own signed webhooks, delivered over HTTP to the app on a live loopback server."""

from __future__ import annotations

import time

from sqlalchemy import select

from retreat.cohorts.models import Enrollment
from retreat.extensions import db
from retreat.payments import gateway, ledger
from retreat.payments.models import Payment, StripeEvent
from tests import payments_helpers as ph
from tests.e2e.conftest import LiveServer


def _wait_for(app, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            if predicate():
                return True
            db.session.rollback()
            time.sleep(0.1)
        return predicate()


def test_localstripe_webhooks_confirm_and_fail_payments(committing_app, localstripe):
    app = committing_app
    app.config["STRIPE_API_BASE"] = localstripe
    server = LiveServer(app).start()
    try:
        with app.app_context():
            gateway.register_localstripe_webhook(f"{server.url}/webhooks/stripe", hook_id="live-server")
            c = ph.cohort(capacity=2, deposit_minor=50000)
            good, bad = ph.applicant(c), ph.applicant(c)
            db.session.commit()
            good_id, bad_id = good.id, bad.id
            _, good_pi = ph.start_and_confirm(good)  # no return page: only the webhook can tell us
            bad_pid, bad_pi = ph.start_and_confirm(bad, card=ph.DECLINED)
        assert _wait_for(app, lambda: db.session.get(Enrollment, good_id).seat == "confirmed")
        assert _wait_for(app, lambda: db.session.get(Payment, bad_pid).status == "failed")
        with app.app_context():
            assert ledger.paid(good_id) == 50000 and ledger.paid(bad_id) == 0
            assert db.session.get(Enrollment, bad_id).seat == "none"
            # (only this test's intents: an earlier test's late webhook may land here too)
            types = sorted(db.session.scalars(select(StripeEvent.event_type).where(
                StripeEvent.object_id.in_([good_pi["id"], bad_pi["id"]]))).all())
            assert types.count("payment_intent.succeeded") == 1 and "payment_intent.payment_failed" in types
    finally:
        server.stop()
        with app.app_context():
            gateway.register_localstripe_webhook("http://127.0.0.1:9/unused", hook_id="live-server")
