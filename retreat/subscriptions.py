"""Connects every domain's signal handlers (``retreat.core.signals``) and registered hooks.

The app factory imports this module, so the web app, the scheduler, the CLI and the tests all
run with the same handlers, whichever modules a request happens to import first.
"""

from retreat.accounts import preferences  # noqa: F401  (the dispatcher's opt-out check)
from retreat.clinical import clearance  # noqa: F401  (consult_flagged -> safety alert)
from retreat.integration import followups, plan  # noqa: F401  (enrollment_left, seat_confirmed, schedule)
from retreat.payments import refunds  # noqa: F401  (enrollment_left -> refunds)
