"""Connects every domain's signal handlers (``retreat.core.signals``), periodic jobs
(``retreat.core.jobs``), data-export sections (``retreat.core.personal_data``: the ``data_export``
modules) and registered hooks.

The app factory imports this module, so the web app, the scheduler, the CLI and the tests all
run with the same handlers and jobs, whichever modules a request happens to import first.
"""

from retreat.accounts import (  # noqa: F401  (opt-out check; sign-in sweep; webhook disabled -> admins)
    data_export,
    phone,  # noqa: F401  (SMS number lookup; the sms export section)
    preferences,
    signin_limits,
    webhook_alerts,
)
from retreat.clinical import (  # noqa: F401  (clearance gate; clearance.expire; safety)
    clearance_validity,
    dosing_board,  # noqa: F401  (the facilitator home's not-ready panel: cohorts.readiness)
    expiry,
    safety,
)
from retreat.clinical import data_export as _clinical_export  # noqa: F401
from retreat.cohorts import data_export as _cohorts_export  # noqa: F401
from retreat.cohorts import enrollment, seats  # noqa: F401  (waitlist.expire_offers, seats.expire_holds)
from retreat.consults import data_export as _consults_export  # noqa: F401
from retreat.finance import payouts, reconciliation  # noqa: F401  (finance.* jobs)
from retreat.integration import circles, discharge, escalation, followups  # noqa: F401  (signals, escalation job)
from retreat.integration import data_export as _integration_export  # noqa: F401
from retreat.messaging import data_export as _messaging_export  # noqa: F401
from retreat.messaging import dispatcher, sms_dispatcher, webhook_dispatcher  # noqa: F401  (outbox.dispatch, sms.send, webhooks.deliver)
from retreat.payments import autopay_charges, reactions, refunds  # noqa: F401  (autopay.charge_due; seat_cleared, schedule; enrollment_left -> refunds)
from retreat.payments import data_export as _payments_export  # noqa: F401
from retreat.privacy import export as _privacy_export  # noqa: F401  (the deletion-requests section)
