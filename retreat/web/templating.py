"""Jinja filters and globals: local times, money, role navigation."""

from __future__ import annotations

from flask import Flask, current_app, url_for
from flask_login import current_user

from retreat.money import format_money
from retreat.timeutil import format_local, human_date

# (endpoint, label) per role; each blueprint owns its pages.
NAV = {
    "participant": [("participant.dashboard", "My retreat"), ("public.retreats", "Retreats"),
                    ("participant.intake_index", "Medical review"), ("participant.payments_index", "Payments"),
                    ("participant.my_data", "My data")],
    "facilitator": [("facilitator.dashboard", "Facilitator"), ("facilitator.cohorts", "Cohorts"),
                    ("facilitator.clearance_overview", "Clearance"), ("facilitator.safety_alerts", "Safety alerts")],
    "provider": [("provider.dashboard", "Clearance queue")],
    "finance": [("finance.dashboard", "Finance"), ("finance.payments_dashboard", "Payments")],
    "admin": [("admin.dashboard", "Admin"), ("admin.users", "Users"),
              ("admin.organizations", "Organisations"), ("admin.audit_log", "Audit log"),
              ("admin.settings", "Settings"), ("facilitator.cohorts", "Cohorts"), ("admin.messages", "Messages"),
              ("admin.deletion_requests", "Deletion requests"), ("admin.break_glass", "Break glass")],
}
NAV["facilitator"] += [("facilitator.consults", "Consults"), ("facilitator.availability", "Availability")]
NAV["finance"] += [("finance.balances_due", "Balances due"), ("finance.reports", "Reports"), ("finance.exports_page", "Exports")]
NAV["finance"] += [("finance.payouts_list", "Payouts")]
NAV["finance"] += [("finance.reconciliation_index", "Reconciliation")]
NAV["participant"] += [("participant.journal_index", "Journal"), ("participant.outcomes", "Progress"),
                       ("participant.checkins_index", "Check-ins")]
NAV["facilitator"] += [("facilitator.outcomes_index", "Outcomes")]
NAV["participant"] += [("participant.circles", "Circles")]
NAV["provider"] += [("provider.outcomes_index", "Outcomes"), ("provider.dosing_index", "Dosing days")]


def viewer_tz() -> str:
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.tz or "UTC"
    return "UTC"


def init_app(app: Flask) -> None:
    @app.template_filter("local")
    def _local(value, tz: str | None = None, fmt: str = "%a %d %b %Y, %H:%M"):
        return format_local(value, tz or viewer_tz(), fmt)

    @app.template_filter("human_date")
    def _human_date(value, tz: str | None = None):
        return human_date(value, tz or viewer_tz())

    @app.template_filter("money")
    def _money(amount_minor, currency: str = "USD"):
        return format_money(amount_minor, currency)

    @app.context_processor
    def _globals():
        items = []
        if current_user and getattr(current_user, "is_authenticated", False):
            for endpoint, label in NAV.get(current_user.role, []):
                if endpoint in current_app.view_functions:
                    items.append((url_for(endpoint), label, endpoint))
        return {
            "practice_name": current_app.config["PRACTICE_NAME"],
            "nav_items": items,
            "has_endpoint": lambda name: name in current_app.view_functions,
            "stripe_test_mode": str(current_app.config.get("STRIPE_SECRET_KEY", "")).startswith("sk_test"),
        }
