"""Every route of the app is either explicitly public or guarded, and the guard answers correctly.

New routes are covered automatically: a route that is neither in PUBLIC_ENDPOINTS nor restricted
(``security.restrict_blueprint`` on its blueprint, ``roles_required`` / ``login_required_any`` /
``api_roles_required`` on the view) fails ``test_every_endpoint_is_public_or_restricted``.
"""

from __future__ import annotations

import uuid

import pytest
from werkzeug.routing import IntegerConverter, UUIDConverter

from retreat.accounts import api_tokens
from retreat.accounts.models import STAFF_ROLES
from retreat.models import Role
from tests import factories
from tests.conftest import login_as

# Reachable without signing in, on purpose. Keep each entry justified.
PUBLIC_ENDPOINTS = {
    "static": "CSS/JS",
    "favicon": "the site icon browsers ask for at /favicon.ico",
    "healthz": "load-balancer probe",
    "metrics": "Prometheus scrape: Bearer METRICS_TOKEN compared in constant time; 404 while no token is set",
    "readyz": "readiness probe: dependency states, no personal data",
    "public.index": "home page",
    "public.home": "redirects to the signed-in person's portal, or home",
    "account.login": "sign-in form",
    "account.logout": "POST only; flask_login.login_required: signs the current session out",
    "account.signup": "participant sign-up",
    "account.check_email": "neutral 'check your email' page after sign-up (no enumeration)",
    "account.verify_email_link": "signed link from the verification email: its token moves to the session (303)",
    "account.verify_email": "confirms with the link this browser opened (token in the session)",
    "account.resend_verification": "POST; rate limited; answers the same whoever asks",
    "account.forgot_password": "password reset request (no enumeration)",
    "account.reset_password_link": "signed, single-use link from the reset email: its token moves to the session (303)",
    "account.reset_password": "the reset form, with the link this browser opened (token in the session)",
    "account.totp_verify": "second sign-in step; needs the pending-login session state",
    "api-docs.openapi_json": "OpenAPI document",
    "api_docs.docs": "human-readable API reference",
    "public.retreats": "list of retreats and open cohorts",
    "public.retreat_detail": "a retreat's public page",
    "public.cohort_detail": "a cohort's public page (seats left, price, apply)",
    "public.retreat_guide": "the program guide PDF staff publish",
    "api_cohorts.Cohorts": "open cohorts for the practice's website",
    "widget.script": "the embed snippet's script (/widget.js): static JavaScript",
    "widget.consult": "the framed booking widget: free times, books through the public consult API; no cookie",
    "api_cohorts.CohortDetail": "one open cohort",
    "api_cohorts.CsrfToken": "CSRF token for the session-authenticated API calls",
    "webhooks.stripe_webhook": "Stripe webhook: authenticated by its signature on the raw body",
    "webhooks.sms_webhook": "inbound SMS (Twilio's shape): authenticated by X-Twilio-Signature, 403 otherwise",
    "public.unsubscribe": "the signed unsubscribe link in emails: its token moves to the session (303)",
    "public.unsubscribe_page": "unsubscribe confirmation (GET) and its CSRF-checked form (POST); token in the session",
    "public.unsubscribe_post": "RFC 8058 one-click unsubscribe (signed token)",
    "public.calendar_feed_ics": "calendar subscription feed: private, revocable token (404 otherwise), rate limited",
    "public.follow_up": "POST answers to the emailed link's address (pages rendered before the hand-over; rate limited)",
    "public.follow_up_link": "the emailed check-in / survey link: its signed, expiring token moves to the session (303)",
    "public.follow_up_page": "check-in / survey form opened through that link (token in the session; rate limited)",
    "consults.book": "free consultation booking for anyone",
    "consults.details": "booking form for a chosen time",
    "consults.manage_link_open": "the emailed manage link: signed, expiring token moves to the session (303)",
    "consults.claim_link_open": "the emailed \"this was me\" link: its token moves to the session (303)",
    "consults.manage": "manage a booking: needs the manage link this browser opened",
    "consults.claim": "\"this was me\" for a guest booking: needs the claim link this browser opened",
    "consults.reschedule": "reschedule a booking: needs the manage link this browser opened",
    "consults.cancel": "cancel a booking: needs the manage link this browser opened",
    "consults.invite": "the booking's .ics: needs the manage link this browser opened",
    "consults.sms_number": "a guest's number for text reminders (POST): needs the manage link this browser opened",
    "consults.sms_verify": "the texted code for a guest's number (POST): needs the manage link this browser opened",
    "consults.sms_remove": "remove a guest's number (POST): needs the manage link this browser opened",
    "api_consultations.slots": "free consult times for the practice's website (rate limited)",
    "api_consultations.create": "book a consult from the practice's website (rate limited)",
}

# Allowed requests to these end the session on purpose and answer with a redirect to sign-in.
SIGN_OUT_ENDPOINTS = {"account.logout_everywhere"}

ALL_ROLES = [r.value for r in Role]
METHODS_SKIPPED = {"HEAD", "OPTIONS"}


def allowed_roles(app, endpoint: str) -> tuple[str, ...] | None:
    view = app.view_functions[endpoint]
    roles = getattr(view, "allowed_roles", None)
    if roles is None and not getattr(view, "is_public_view", False) and "." in endpoint:
        blueprint = app.blueprints.get(endpoint.rsplit(".", 1)[0])
        roles = getattr(blueprint, "allowed_roles", None)
    return tuple(roles) if roles is not None else None


def dummy_url(app, rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters.get(name)
        if isinstance(converter, IntegerConverter):
            values[name] = 999999
        elif isinstance(converter, UUIDConverter):
            values[name] = uuid.UUID(int=999999)
        else:
            values[name] = "dummy"
    values.update({k: v for k, v in (rule.defaults or {}).items() if k not in values})
    return rule.build(values, append_unknown=False)[1]


def restricted_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        roles = allowed_roles(app, rule.endpoint)
        if roles is None:
            continue
        for method in sorted(rule.methods - METHODS_SKIPPED):
            yield rule.endpoint, method, dummy_url(app, rule), roles


def test_every_endpoint_is_public_or_restricted(app):
    unguarded = sorted({rule.endpoint for rule in app.url_map.iter_rules()
                        if rule.endpoint not in PUBLIC_ENDPOINTS and allowed_roles(app, rule.endpoint) is None})
    assert unguarded == [], (
        "Endpoints neither restricted (restrict_blueprint / roles_required / login_required_any / "
        f"api_roles_required) nor listed in PUBLIC_ENDPOINTS: {unguarded}")
    stale = sorted(set(PUBLIC_ENDPOINTS) - set(app.view_functions))
    assert stale == [], f"PUBLIC_ENDPOINTS lists endpoints that no longer exist: {stale}"
    for endpoint in app.view_functions:
        roles = allowed_roles(app, endpoint)
        assert roles is None or (roles and set(roles) <= set(ALL_ROLES)), (endpoint, roles)


def test_api_routes_are_guarded_by_tokens_not_blueprints(app):
    """Under /api the guard is on the view (bearer token, or for the web app's own participant calls
    the session with CSRF), never the blueprint's HTML guard."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.endpoint not in PUBLIC_ENDPOINTS:
            assert getattr(app.view_functions[rule.endpoint], "allowed_roles", None), rule.endpoint


@pytest.fixture()
def people(app, db):
    """One signed-in HTML client and (for staff) one API token per role."""
    clients, tokens = {}, {}
    for role in ALL_ROLES:
        user = factories.user(role, password=None)
        if role in STAFF_ROLES:
            tokens[role] = {"Authorization": f"Bearer {api_tokens.create_token(user, name='matrix')[1]}"}
        db.session.commit()
        c = app.test_client()
        login_as(app, c, user)
        c.user = user
        clients[role] = c
    return clients, tokens


def is_login_redirect(r) -> bool:
    return r.status_code in (301, 302, 303) and "/account/login" in r.headers.get("Location", "")


def test_role_matrix(app, db, client, people):
    clients, tokens = people
    routes = list(restricted_routes(app))
    assert any(e.startswith("admin.") for e, *_ in routes) and any(u.startswith("/api/") for _, _, u, _ in routes)
    problems = []
    for endpoint, method, url, roles in routes:
        is_api = url.startswith("/api/")
        session_api = is_api and getattr(app.view_functions[endpoint], "session_auth", False)
        # anonymous
        r = client.open(url, method=method)
        if session_api:
            if r.status_code != 401 or not r.is_json:
                problems.append((endpoint, method, "anonymous", r.status_code))
        elif is_api:
            if r.status_code != 401 or not r.is_json or "bearer" not in r.headers.get("WWW-Authenticate", "").lower():
                problems.append((endpoint, method, "anonymous", r.status_code))
        elif not is_login_redirect(r):
            problems.append((endpoint, method, "anonymous", r.status_code))
        for role in ALL_ROLES:
            if session_api:  # the signed-in web app's own calls: the session cookie is the credential
                login_as(app, clients[role], clients[role].user)
                r = clients[role].open(url, method=method, json={} if method in ("POST", "PUT", "PATCH") else None)
                if role in roles:
                    if r.status_code in (401, 403):
                        problems.append((endpoint, method, role, r.status_code, "allowed but refused"))
                elif r.status_code != 403 or not r.is_json:
                    problems.append((endpoint, method, role, r.status_code, "should be 403"))
                continue
            if is_api:
                if role in tokens:
                    r = clients[role].open(url, method=method, headers=tokens[role])
                else:  # no token possible: a session cookie must not be enough
                    r = clients[role].open(url, method=method)
                    if r.status_code != 401:
                        problems.append((endpoint, method, role, r.status_code, "cookie"))
                    continue
            else:
                # Sign in afresh: an allowed POST may have ended the session (sign out everywhere).
                db.session.refresh(clients[role].user)
                login_as(app, clients[role], clients[role].user)
                r = clients[role].open(url, method=method)
            if role in roles:
                if r.status_code in (401, 403) or (is_login_redirect(r) and endpoint not in SIGN_OUT_ENDPOINTS):
                    problems.append((endpoint, method, role, r.status_code, "allowed but refused"))
            elif r.status_code != 403 or (is_api and not r.is_json):
                problems.append((endpoint, method, role, r.status_code, "should be 403"))
    assert problems == [], "\n".join(map(str, problems))


def test_a_new_unguarded_route_is_caught():
    """The classification above really flags a route that nobody guarded or listed."""
    from retreat import create_app
    from tests.conftest import base_config

    fresh = create_app(base_config())

    @fresh.get("/forgotten")
    def forgotten():
        return "oops"

    unguarded = {rule.endpoint for rule in fresh.url_map.iter_rules()
                 if rule.endpoint not in PUBLIC_ENDPOINTS and allowed_roles(fresh, rule.endpoint) is None}
    assert unguarded == {"forgotten"}


def test_dosing_pages_are_for_providers_only(app):
    dosing = [e for e in app.view_functions if e.startswith("provider.dosing")]
    assert len(dosing) >= 9
    for endpoint in dosing:
        assert allowed_roles(app, endpoint) == ("provider",), endpoint


def test_every_dosing_route_refuses_facilitators_finance_participants_and_other_organisations(app, db):
    """Real requests on a real dosing day: the provider pages (list, board, board JSON for polling,
    entries incl. the override, assignment, settings, PDF and CSV) refuse every other role (403) and
    another organisation's provider (404); the facilitator's status-only dosing view refuses finance,
    participants and providers (403). Nothing is written by any refused request."""

    from sqlalchemy import func, select

    from retreat.clinical import staffing
    from retreat.clinical.dosing_models import DosingEntry, EntryKind
    from retreat.extensions import db as _db
    from tests.unit.test_dosing_staffing import _clinician
    from tests.web.test_provider_dosing import _day

    org, lead, s, enr = _day()
    outsider = _clinician(factories.provider_org())
    people = {role: factories.user(role, password=None) for role in ("facilitator", "finance", "participant")}
    _db.session.commit()
    gets = [f"/provider/dosing/{s.id}", f"/provider/dosing/{s.id}/state.json", f"/provider/dosing/{s.id}/record.pdf",
            f"/provider/dosing/{s.id}/record.csv"]
    own_org_pages = ["/provider/dosing", "/provider/dosing/settings"]
    posts = [f"/provider/dosing/{s.id}/people/{enr.id}/{k.value}" for k in EntryKind] + [
        f"/provider/dosing/{s.id}/assign", f"/provider/dosing/{s.id}/unassign/{lead.id}"]
    body = {"override_reason": "Let me in", "idempotency_key": str(uuid.uuid4()), "expected_version": "1",
            "clinician_id": str(outsider.id)}
    facilitator_view = f"/facilitator/sessions/{s.id}/checkin"

    def entries():
        return _db.session.scalar(select(func.count()).select_from(DosingEntry))

    before = entries()
    for role, user in people.items():
        client = app.test_client()
        login_as(app, client, user)
        for url in gets + own_org_pages:
            assert client.get(url).status_code == 403, (role, url)
        for url in posts:
            assert client.post(url, data=body).status_code == 403, (role, url)
            assert client.post(url, json=body).status_code == 403, (role, url)
        if role != "facilitator":
            assert client.get(facilitator_view).status_code == 403, (role, facilitator_view)
        else:
            page = client.get(facilitator_view)
            assert page.status_code == 200 and "BP " not in page.get_data(as_text=True)
    client = app.test_client()
    login_as(app, client, outsider)
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in own_org_pages:
        assert client.get(url).status_code == 200, url  # their own organisation's (empty) list and settings
    for url in posts:
        assert client.post(url, json=body).status_code == 404, url
        assert client.post(url, data=body).status_code == 404, url
    assert client.get(facilitator_view).status_code == 403
    assert entries() == before and [a for a, _ in staffing.coverage([s])[s.id].clinicians] == [lead.name]
