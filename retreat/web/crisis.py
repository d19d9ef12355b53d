"""Where the crisis resources show on the web: every page a participant or a guest sees (the
footer block, ``templates/_crisis.html``), and the fuller panels of the check-in, intake-safety and
consult pages; never on the team's pages (the staff blueprints, or a signed-in staff member).

The numbers are the practice's setting (``retreat.accounts.crisis``); the ``crisis_resources``
Jinja global is also what the email templates call (``retreat.messaging.render``).
"""

from __future__ import annotations

from flask import Flask, has_request_context, request
from flask_login import current_user

from retreat.accounts import crisis
from retreat.accounts.models import Role

STAFF_BLUEPRINTS = frozenset({"facilitator", "provider", "finance", "admin"})


def shows_crisis() -> bool:
    """Participants' and guests' pages carry the crisis block; the team's pages do not (a page
    rendered outside a request, e.g. a document, is a participant's)."""
    if not has_request_context():
        return True
    if request.blueprint in STAFF_BLUEPRINTS:
        return False
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.role == Role.PARTICIPANT.value
    return True


def init_app(app: Flask) -> None:
    app.jinja_env.globals["crisis_resources"] = crisis.current

    @app.context_processor
    def _crisis():
        return {"show_crisis": shows_crisis()}
