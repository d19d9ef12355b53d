"""Connects every domain's signal handlers (``retreat.core.signals``), periodic jobs
(``retreat.core.jobs``) and registered hooks.

The app factory imports this module, so the web app, the scheduler, the CLI and the tests all
run with the same handlers and jobs, whichever modules a request happens to import first.
"""

from retreat.accounts import preferences, signin_limits, webhook_alerts  # noqa: F401  (opt-out check; sign-in counter sweep; webhook disabled -> admins)
from retreat.clinical import clearance_validity, expiry, safety  # noqa: F401  (clearance gate; clearance.expire; safety)
from retreat.cohorts import enrollment, seats  # noqa: F401  (waitlist.expire_offers, seats.expire_holds)
from retreat.finance import payouts, reconciliation  # noqa: F401  (finance.* jobs)
from retreat.integration import circles, discharge, escalation, followups  # noqa: F401  (signals, escalation job)
from retreat.messaging import dispatcher, webhook_dispatcher  # noqa: F401  (outbox.dispatch, webhooks.deliver)
from retreat.payments import reactions, refunds  # noqa: F401  (seat_cleared, schedule; enrollment_left -> refunds)
