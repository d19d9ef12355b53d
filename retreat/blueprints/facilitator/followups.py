"""Facilitators: integration alerts (who, which category, when; never the answers) and follow-up
response rates per cohort, shown on the dashboard."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_wtf import FlaskForm

from retreat.blueprints.facilitator import bp
from retreat.core.errors import DomainError, NotFound
from retreat.integration import followups
from retreat.timeutil import now_utc
from retreat.web.forms import refused
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


class AcknowledgeAlertForm(FlaskForm):
    pass


def dashboard_context() -> dict:
    """What the dashboard's integration panel shows."""
    viewer = acting_user()
    return {"integration_alerts": followups.open_alerts(viewer=viewer),
            "acknowledged_alerts": followups.recent_acknowledged(viewer=viewer),
            "reason_labels": followups.REASON_LABELS, "response_rates": followups.response_rates(),
            "ack_form": AcknowledgeAlertForm()}


@bp.post("/integration-alerts/<int:alert_id>/acknowledge")
@no_store
def acknowledge_integration_alert(alert_id: int):
    if AcknowledgeAlertForm().validate_on_submit():
        try:
            changed = followups.acknowledge(alert_id, acting_user(), now=now_utc(), ctx=request_context())
        except NotFound:
            abort(404)
        except DomainError as exc:
            refused(exc.message, "error")
            return redirect(url_for("facilitator.dashboard") + "#integration-alerts"), 303
        flash("Alert acknowledged. Thank you for following up." if changed else "This alert was already acknowledged.",
              "success")
    else:
        flash("The form expired; please try again.", "error")
    return redirect(url_for("facilitator.dashboard") + "#integration-alerts"), 303
