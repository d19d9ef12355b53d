"""Participant pages for automatic installments (PostgreSQL when set, localstripe): choosing a plan
with "charge my card automatically", the consent with dates and amounts, the return page, double and
empty submits, switching to paying by hand, replacing the card; finance's follow-up panel."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retreat.models import OutboxMessage
from retreat.payments import autopay_charges, gateway
from retreat.payments.autopay_models import AutopayMandate, MandateStatus
from retreat.timeutil import human_date
from tests import autopay_helpers as ah
from tests import factories
from tests.conftest import signed_in

pytestmark = pytest.mark.usefixtures("stripe_app")


def _mandates(db, enr):
    return db.session.scalars(select(AutopayMandate).where(AutopayMandate.enrollment_id == enr.id)
                              .order_by(AutopayMandate.id)).all()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def _save_through_pages(app, db, enr, card=ah.VISA, count=3):
    c = signed_in(app, enr.participant)
    r = c.post(f"/me/payments/{enr.id}/plan", data={"count": str(count), "autopay": "y"})
    assert r.status_code == 302 and "/autopay/" in r.headers["Location"], r.get_data(as_text=True)[-800:]
    page = c.get(r.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    secret = re.search(r'data-client-secret="([^"]+)"', text).group(1)
    # what Stripe.js's confirmCardSetup does in the browser
    gateway.confirm_setup_intent(secret.split("_secret_")[0], gateway.create_test_payment_method(card))
    back = c.get(r.headers["Location"] + "/return")
    assert back.status_code == 302
    return c, text, back


def test_plan_with_automatic_payments_shows_consent_with_dates_and_amounts_and_saves_the_card(app, db):
    enr, _ = ah.on_plan(1)
    c, text, back = _save_through_pages(app, db, enr)
    plan = sorted(enr.installments if hasattr(enr, "installments") else [], key=lambda i: i.seq)
    consent = html.unescape(re.search(r'data-testid="consent">([^<]+)<', text).group(1))
    assert consent.startswith(f"You authorise {app.config['PRACTICE_NAME']} to charge the card you save below $300.00 on ")
    from retreat.payments import checkout

    plan = checkout.current_installments(enr)
    for inst in plan:
        assert f"$300.00 on {human_date(inst.due_on)}" in consent
        assert human_date(inst.due_on) in text
    page = c.get(back.headers["Location"]).get_data(as_text=True)
    assert "Your card (Visa ending 4242) is saved" in page
    assert "Automatic payments on" in page and "expires 12/2034" in page and "Switch to paying by hand" in page
    [m] = _mandates(db, enr)
    assert m.status == MandateStatus.ACTIVE and "Visa ending 4242" in m.consent_text


def test_double_submits_make_one_mandate_and_empty_forms_change_nothing(app, db):
    enr, _ = ah.on_plan(2)
    c = signed_in(app, enr.participant)
    first = c.post(f"/me/payments/{enr.id}/plan", data={"count": "3", "autopay": "y"})
    second = c.post(f"/me/payments/{enr.id}/plan", data={"count": "3", "autopay": "y"})
    assert first.headers["Location"] == second.headers["Location"]
    assert len(_mandates(db, enr)) == 1
    # the return page before the card was entered: a clear message, nothing saved
    back = c.get(first.headers["Location"] + "/return", follow_redirects=True)
    assert "The card was not saved yet" in back.get_data(as_text=True)
    assert _mandates(db, enr)[0].status == MandateStatus.PENDING
    # an empty plan form
    empty = c.post(f"/me/payments/{enr.id}/plan", data={})
    assert empty.status_code == 422 and "Not a valid choice" in empty.get_data(as_text=True)
    assert len(_mandates(db, enr)) == 1
    # stop / replace without the form's token: refused, nothing changes
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        r = c.post(f"/me/payments/{enr.id}/autopay/stop", data={})
        assert r.status_code == 400 and "Your form expired" in r.get_data(as_text=True)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert _mandates(db, enr)[0].status == MandateStatus.PENDING
    # the card saved twice (a double click on the return): one active mandate
    secret_page = c.get(first.headers["Location"]).get_data(as_text=True)
    si = re.search(r'data-client-secret="([^"]+)"', secret_page).group(1).split("_secret_")[0]
    gateway.confirm_setup_intent(si, gateway.create_test_payment_method(ah.VISA))
    for _ in range(2):
        assert c.get(first.headers["Location"] + "/return").status_code == 302
    assert [m.status for m in _mandates(db, enr)] == ["active"]
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template == "autopay_notice", OutboxMessage.recipient_user_id == enr.participant_id)) == 1


def test_switch_to_paying_by_hand_and_replace_the_card_from_the_payments_page(app, db):
    enr, _ = ah.on_plan(1)
    c, _, _ = _save_through_pages(app, db, enr)
    r = c.post(f"/me/payments/{enr.id}/autopay/card", data={})
    assert r.status_code == 302 and "/autopay/" in r.headers["Location"]
    page = c.get(r.headers["Location"]).get_data(as_text=True)
    si = re.search(r'data-client-secret="([^"]+)"', page).group(1).split("_secret_")[0]
    gateway.confirm_setup_intent(si, gateway.create_test_payment_method("5555555555554444"))
    c.get(r.headers["Location"] + "/return")
    assert [m.status for m in _mandates(db, enr)] == ["revoked", "active"]
    assert _mandates(db, enr)[1].card_last4 == "4444"
    done = c.post(f"/me/payments/{enr.id}/autopay/stop", data={}, follow_redirects=True)
    assert "Automatic payments are stopped" in done.get_data(as_text=True)
    again = c.post(f"/me/payments/{enr.id}/autopay/stop", data={}, follow_redirects=True)
    assert "already stopped" in again.get_data(as_text=True)
    assert [m.status for m in _mandates(db, enr)] == ["revoked", "revoked"]
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template == "autopay_notice", OutboxMessage.recipient_user_id == enr.participant_id,
        OutboxMessage.dedupe_key.like("%-revoked"))) == 1


def test_someone_elses_card_pages_are_not_found(app, db):
    enr, _ = ah.on_plan(1)
    c, _, _ = _save_through_pages(app, db, enr)
    [m] = _mandates(db, enr)
    other = signed_in(app, factories.user("participant", password=None))
    assert other.get(f"/me/payments/{enr.id}/autopay/{m.id}").status_code == 404
    assert other.post(f"/me/payments/{enr.id}/autopay/stop", data={}).status_code == 404
    assert c.get(f"/me/payments/{enr.id}/autopay/{m.id + 999}").status_code == 404


def test_finance_home_flags_installments_whose_retries_are_exhausted(app, db):
    enr, plan = ah.on_plan(2)
    ah.save_card(enr, ah.DECLINED)
    tz, due = enr.cohort.timezone, plan[0].due_on
    for day in (0, 1, 3, 5):
        autopay_charges.charge_due(ah.at(due + timedelta(days=day), 9, tz))
    fin = signed_in(app, factories.user("finance", password=None))
    page = fin.get("/finance/").get_data(as_text=True)
    assert "Automatic installments to follow up" in page
    panel = page.split("Automatic installments to follow up", 1)[1].split("</section>", 1)[0]
    assert enr.participant.name in panel and "declined 4 times" in panel


def _count(client, path: str) -> int:
    from tests.web.test_finance_query_counts import counting

    client.get(path)  # one-time work of the session's first request
    with counting() as statements:
        resp = client.get(path)
    assert resp.status_code == 200, resp.status_code
    return len(statements)


def test_payments_page_and_card_page_statements_do_not_grow_with_installments_and_attempts(app, db):
    counts = []
    for n in (2, 6):
        enr, plan = ah.on_plan(n)
        ah.save_card(enr, ah.DECLINED)
        for inst in plan[:2]:  # two installments with attempts each
            for day in (0, 1):
                autopay_charges.charge_due(ah.at(inst.due_on + timedelta(days=day), 9, enr.cohort.timezone))
        c = signed_in(app, enr.participant)
        page = _count(c, f"/me/payments/{enr.id}")
        r = c.post(f"/me/payments/{enr.id}/autopay/card", data={})
        card = _count(c, r.headers["Location"])  # the SetupIntent exists after the first visit
        counts.append((page, card))
    assert counts[0] == counts[1], counts
    assert max(counts[1]) <= 30, counts
