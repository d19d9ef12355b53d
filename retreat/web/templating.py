"""Jinja filters and globals: local times, money, role navigation."""

from __future__ import annotations

from flask import Flask, current_app, request, url_for
from flask_login import current_user

from retreat.money import format_money
from retreat.timeutil import format_local, human_date

# The role's menu: a top-level link is (endpoint, label); a group is (label, [(endpoint, label), ...]).
# Each blueprint owns its pages; an endpoint that is not registered is left out (and an empty group too).
NAV = {
    "participant": [("participant.dashboard", "My retreat"), ("public.retreats", "Retreats"),
                    ("Health", [("participant.intake_index", "Medical review"), ("participant.checkins_index", "Check-ins"),
                                ("participant.outcomes", "Progress")]),
                    ("Integration", [("participant.journal_index", "Journal"), ("participant.circles", "Circles")]),
                    ("participant.payments_index", "Payments")],
    "facilitator": [("facilitator.dashboard", "Today"),
                    ("Cohorts", [("facilitator.cohorts", "Cohorts"), ("facilitator.clearance_overview", "Clearance"),
                                 ("facilitator.safety_alerts", "Safety alerts")]),
                    ("Consults", [("facilitator.consults", "Consults"), ("facilitator.availability", "Availability")]),
                    ("Integration", [("facilitator.outcomes_index", "Outcomes")])],
    "provider": [("provider.dashboard", "Clearance queue"), ("provider.dosing_index", "Dosing days"),
                 ("provider.outcomes_index", "Outcomes")],
    "finance": [("finance.dashboard", "Overview"),
                ("Money", [("finance.payments_dashboard", "Payments"), ("finance.balances_due", "Balances due"),
                           ("finance.payouts_list", "Payouts"), ("finance.reconciliation_index", "Reconciliation"),
                           ("finance.discount_codes", "Discount codes")]),
                ("Reports", [("finance.reports", "Reports"), ("finance.exports_page", "Exports")])],
    "admin": [("admin.dashboard", "Overview"),
              ("People", [("admin.users", "Users"), ("admin.organizations", "Organisations")]),
              ("Operations", [("facilitator.cohorts", "Cohorts"), ("finance.discount_codes", "Discount codes"),
                              ("admin.messages", "Messages"), ("admin.webhooks_list", "Webhooks"),
                              ("admin.settings", "Settings")]),
              ("Records", [("admin.audit_log", "Audit log"), ("admin.deletion_requests", "Deletion requests"),
                           ("admin.break_glass", "Break glass")])],
}
# Pages of the role's account menu (beside Settings and Sign out).
ACCOUNT_NAV = {"participant": [("participant.my_data", "My data")]}


def nav_entries(role: str | None, endpoints, current: str | None, url=url_for) -> list[dict]:
    """The menu as the template draws it: links {href, label, current} and groups {label, id,
    links, current}; unknown endpoints and empty groups are left out."""
    entries: list[dict] = []
    for index, (first, second) in enumerate(NAV.get(role or "", [])):
        if isinstance(second, list):
            links = [{"href": url(e), "label": label, "current": e == current} for e, label in second if e in endpoints]
            if links:
                entries.append({"label": first, "id": f"nav-group-{index}", "links": links,
                                "current": any(link["current"] for link in links)})
        elif first in endpoints:
            entries.append({"href": url(first), "label": second, "current": first == current})
    return entries


def viewer_tz() -> str:
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.tz or "UTC"
    return "UTC"


def init_app(app: Flask) -> None:
    # Browsers ask for /favicon.ico on their own; base.html links the SVG and PNG in static/.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))

    @app.template_filter("local")
    def _local(value, tz: str | None = None, fmt: str = "%a %d %b %Y, %H:%M"):
        return format_local(value, tz or viewer_tz(), fmt)

    @app.template_filter("human_date")
    def _human_date(value, tz: str | None = None):
        return human_date(value, tz or viewer_tz())

    @app.template_filter("money")
    def _money(amount_minor, currency: str = "USD"):
        return format_money(amount_minor, currency)

    def _refund_policy_text(cohort, enr=None) -> str:
        """The refund policy as participants read it, written from the tiers (an enrollment's own
        snapshot when given) so the text and the refunds cannot disagree."""
        from retreat.payments import refund_policy

        return refund_policy.enrollment_policy_text(enr) if enr is not None else refund_policy.cohort_policy_text(cohort)

    def _refund_notes(cohort) -> str:
        from retreat.payments import refund_policy

        return refund_policy.notes_shown(cohort)

    def _screening_fee_terms(cohort, enr=None) -> str:
        """What a screening fee means, said plainly before paying ("" without a fee)."""
        from retreat.payments import screening

        return screening.enrollment_terms(enr) if enr is not None else screening.cohort_terms(cohort)

    app.jinja_env.globals["refund_policy_text"] = _refund_policy_text
    app.jinja_env.globals["screening_fee_terms"] = _screening_fee_terms
    app.jinja_env.globals["refund_notes"] = _refund_notes

    @app.context_processor
    def _globals():
        items: list[dict] = []
        account_items: list[dict] = []
        if current_user and getattr(current_user, "is_authenticated", False):
            endpoints = current_app.view_functions
            items = nav_entries(current_user.role, endpoints, request.endpoint)
            account_items = [{"href": url_for(e), "label": label, "current": e == request.endpoint}
                             for e, label in ACCOUNT_NAV.get(current_user.role, []) if e in endpoints]
        return {
            "practice_name": current_app.config["PRACTICE_NAME"],
            "nav_items": items,
            "account_nav_items": account_items,
            "has_endpoint": lambda name: name in current_app.view_functions,
            "viewer_tz": viewer_tz,
            "stripe_test_mode": str(current_app.config.get("STRIPE_SECRET_KEY", "")).startswith("sk_test"),
        }
