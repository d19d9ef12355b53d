"""What finance may and may not do: every clinical endpoint refuses finance (403/404, never the
data), cohort prices cannot be changed by finance (discount codes and
scholarships can, on finance's own pages), and every refund is in the audit log."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from werkzeug.routing import IntegerConverter

from retreat.cohorts.models import Cohort
from retreat.models import AuditEvent
from retreat.payments import checkout as payments
from retreat.payments import gateway, refunds
from retreat.payments.models import Refund
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_clearance as fcl
from tests import payments_helpers as ph
from tests.conftest import signed_in

# Endpoints that show or change clinical data: intake, clearance, the provider portal, data
# exports, safety alerts, check-ins, outcome measures, journals, consult notes, break glass.
CLINICAL_BLUEPRINTS = ("participant", "provider", "api_clearance")
CLINICAL_WORDS = re.compile(r"intake|clearance|provider|export|safety|alert|checkin|check_in|outcome|journal|"
                            r"note|break_glass|my_data|roster|screening|consent")


def _clinical_endpoints(app) -> list:
    rules = []
    for rule in app.url_map.iter_rules():
        bp_name = rule.endpoint.split(".")[0]
        if bp_name == "finance" or rule.endpoint == "static":
            continue
        if bp_name in CLINICAL_BLUEPRINTS or CLINICAL_WORDS.search(rule.endpoint) or CLINICAL_WORDS.search(rule.rule):
            rules.append(rule)
    return sorted(rules, key=lambda r: (r.endpoint, r.rule))


def _url(app, rule, ids: dict[str, int]) -> str:
    values = {}
    for arg in rule.arguments:
        conv = rule._converters[arg]
        values[arg] = ids.get(arg, ids["default"]) if isinstance(conv, IntegerConverter) else "x"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def test_finance_gets_403_or_404_on_every_clinical_endpoint(app, db):
    s = fcl.setup()
    req = fcl.submit(s, **fcl.marked_answers())
    finance = signed_in(app, factories.user("finance", password=None))
    db.session.commit()
    before = db.session.scalars(select(AuditEvent.id)).all()
    ids = {"default": s.enrollment.id, "enrollment_id": s.enrollment.id, "request_id": req.id,
           "cohort_id": s.cohort.id, "user_id": s.participant.id}
    walked = []
    for rule in _clinical_endpoints(app):
        url = _url(app, rule, ids)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            resp = finance.open(url, method=method, data={}, headers={"Accept": "text/html"})
            walked.append((rule.endpoint, method, resp.status_code))
            assert resp.status_code in (401, 403, 404), (rule.endpoint, method, url, resp.status_code)
            assert fcl.MARKER not in resp.get_data(as_text=True), (rule.endpoint, method)
    # the provider API with a finance bearer token (sessions are not API credentials)
    from retreat.accounts import api_tokens

    _token, raw = api_tokens.create_token(finance.user, name="finance laptop")
    db.session.commit()
    for rule in _clinical_endpoints(app):
        if rule.endpoint.startswith("api"):
            resp = app.test_client().get(_url(app, rule, ids), headers={"Authorization": f"Bearer {raw}"})
            walked.append((rule.endpoint, "GET+token", resp.status_code))
            assert resp.status_code in (403, 404), (rule.endpoint, resp.status_code)
            assert fcl.MARKER not in resp.get_data(as_text=True)
    names = {w[0] for w in walked}
    for expected in ("participant.intake", "participant.export_json", "participant.clearance_status",
                     "provider.request_detail", "provider.decide", "facilitator.safety_alerts",
                     "facilitator.cohort_clearance", "api_clearance.get_request", "admin.break_glass"):
        assert expected in names, expected
    assert len(walked) >= 25
    # no clinical read was recorded for finance: nothing was read
    new = db.session.scalars(select(AuditEvent).where(AuditEvent.id.not_in(before or [0]),
                                                      AuditEvent.actor_id == finance.user.id)).all()
    assert [e.action for e in new if "clinical" in e.action or "intake" in e.action] == []


def test_finance_cannot_change_prices_or_discounts(app, db):
    c = ph.cohort(price_minor=450000, deposit_minor=50000)
    finance = signed_in(app, factories.user("finance", password=None))
    db.session.commit()
    edit = finance.post(f"/facilitator/cohorts/{c.id}/edit", data={"price": "1.00", "deposit": "0.50"})
    new = finance.post(f"/facilitator/retreats/{c.retreat_id}/cohorts/new", data={"price": "1.00"})
    assert edit.status_code == 403 and new.status_code == 403
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        resp = finance.open(f"/api/v1/cohorts/{c.id}", method=method, json={"price": {"amount_minor": 100}})
        assert resp.status_code in (401, 403, 405), method
    db.session.expire_all()
    assert db.session.get(Cohort, c.id).price_minor == 450000
    # Cohort prices are set by no endpoint open to finance: every endpoint outside finance's own
    # pages whose name speaks of prices or the cohort form refuses finance. (Discount codes and
    # scholarships are finance's to manage since issue #18: /finance/discount-codes and the
    # scholarship form on an enrollment's finance page.)
    price_rules = [r for r in app.url_map.iter_rules()
                   if re.search(r"price|scholarship|discount_code|cohort_form|override", r.endpoint)
                   and not r.endpoint.startswith("finance.")]
    assert price_rules, "the cohort form sets prices"
    ids = {"default": c.id, "cohort_id": c.id, "retreat_id": c.retreat_id}
    for rule in price_rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            resp = finance.open(_url(app, rule, ids), method=method, data={"price": "1.00"})
            assert resp.status_code in (401, 403, 404, 405), (rule.endpoint, method, resp.status_code)
    # finance's own pages have no cohort-price form
    finance_rules = [r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("finance.")]
    assert not [e for e in finance_rules if re.search(r"cohort_form|cohort_price", e)]


@pytest.mark.usefixtures("stripe_app")
def test_every_refund_is_in_the_audit_log(db, client):
    c = ph.cohort(deposit_minor=50000)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    fin_user = factories.user("finance", password=None)
    db.session.commit()
    fin = signed_in(client.application, fin_user)
    # 1. finance refunds with a reason, through the page
    assert ph.finance_refund(fin, enr.id, "100.00", "Goodwill")[1].status_code == 302
    # 2. a refund issued in the Stripe dashboard, learnt from a webhook
    re_ = gateway.create_refund(payment_intent_id=pi["id"], amount_minor=2500, idempotency_key="dash-audit",
                                metadata={})
    assert ph.deliver(client, "refund.created", {"id": re_["id"], "object": "refund"}).status_code == 200
    # 3. the practice cancels: a full refund of the rest
    refunds.refund_practice_cancelled(enr, now=now_utc(), actor=None)
    db.session.expire_all()
    all_refunds = db.session.scalars(select(Refund).where(Refund.enrollment_id == enr.id)).all()
    assert {r.kind for r in all_refunds} == {"finance", "external", "practice_cancelled"}
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["payments.refund_decided", "payments.refund_external"]))).all()
    audited = {rid for e in events for rid in (e.details or {}).get("refunds", [])}
    assert {r.id for r in all_refunds} <= audited  # every refund, whoever started it
    by_finance = next(e for e in events if e.details["kind"] == "finance")
    assert by_finance.actor_id == fin_user.id and by_finance.details["reason"] == "Goodwill"
    assert by_finance.ip is not None
