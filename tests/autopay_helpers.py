"""Helpers for automatic-installment tests: a confirmed participant on a plan, a card saved through
a real SetupIntent at localstripe, the moment an installment falls due in the cohort's zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta  # noqa: F401  (re-exported for tests)

from retreat.extensions import db
from retreat.payments import autopay, gateway
from retreat.payments import checkout as payments
from retreat.timeutil import now_utc, zone
from tests import payments_helpers as ph

VISA = "4242424242424242"
DECLINED = "4000000000000341"
NEEDS_AUTH = "4000002500003155"


def on_plan(count: int = 3, *, price_minor: int = 100000, deposit_minor: int = 10000, **cohort_kw):
    """A participant whose deposit is paid (seat confirmed) with a plan of ``count`` installments."""
    c = ph.cohort(price_minor=price_minor, deposit_minor=deposit_minor, **cohort_kw)
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    plan = payments.choose_plan(enr, count, now=now_utc(), actor=None)
    db.session.commit()
    return enr, plan


def save_card(enr, card: str = VISA):
    """start -> SetupIntent -> confirmed with a test card at localstripe -> complete. The mandate."""
    m = autopay.start(enr, now=now_utc(), actor=enr.participant)
    db.session.commit()
    si = autopay.ensure_setup_intent(m.id)
    gateway.confirm_setup_intent(si["id"], gateway.create_test_payment_method(card))
    m = autopay.complete(m.id, now=now_utc(), actor=enr.participant)
    db.session.commit()
    return m


def at(day, hour: int, tz: str) -> datetime:
    """``day`` at ``hour`` o'clock in ``tz``, as an aware datetime."""
    return datetime.combine(day, time(hour, 0), zone(tz))


def intents_for(attempt_ids) -> list[dict]:
    """The PaymentIntents at localstripe made for these autopay attempts (by metadata and by the
    attempts' customers: ids restart when a committing test truncates the tables)."""
    from sqlalchemy import select

    from retreat.payments.autopay_models import AutopayAttempt, AutopayMandate

    ids = list(attempt_ids)
    wanted = {str(i) for i in ids}
    customers = set(db.session.scalars(select(AutopayMandate.stripe_customer_id).join(
        AutopayAttempt, AutopayAttempt.mandate_id == AutopayMandate.id).where(AutopayAttempt.id.in_(ids)))) if ids else set()
    return [pi for pi in gateway.list_payment_intents(100)
            if pi["metadata"].get("autopay_attempt") in wanted and pi["customer"] in customers]
