"""Words (issue #16, item 25): checklist limits and privacy text, readable reminder dates, no doubled
full stops in refund texts."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.messaging.models import OutboxMessage
from retreat.payments import checkout as payments
from retreat.timeutil import now_utc
from tests import payments_helpers as ph

pytestmark = pytest.mark.usefixtures("stripe_app")
READABLE = re.compile(r"^(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day \d{1,2} [A-Z][a-z]+ \d{4}$")


def test_checklist_answer_has_one_limit_and_says_who_reads_it(db, stripe_app):
    enr = ph.applicant(ph.cohort())
    db.session.commit()
    page = ph.signed_in(stripe_app, enr.participant).get(
        f"/me/enrollments/{enr.id}/checklist/intention").get_data(as_text=True)
    assert 'maxlength="2000"' in page and "Up to 2000 characters." in page and "20000" not in page
    assert "Only you can read it: your facilitators see only that this step is done." in page
    assert "Only you and your facilitators" not in page


def test_payment_reminders_give_readable_dates(db, stripe_app):
    c = ph.cohort(price_minor=450000, deposit_minor=50000, starts_at=now_utc() + timedelta(days=90))
    enr = ph.applicant(c)
    _, pi = ph.start_and_confirm(enr)
    payments.sync_payment_intent(pi, now=now_utc())
    payments.choose_plan(enr, 3, now=now_utc(), actor=enr.participant)
    db.session.flush()
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "payment_reminder")).all()
    assert mails and all(READABLE.match(m.context["due_on"]) for m in mails), [m.context["due_on"] for m in mails]
    from retreat.payments import balances
    from tests import factories

    balances.remind_participant(enr.id, now=now_utc(), actor=factories.user("finance", password=None))
    db.session.flush()
    [mail] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "balance_reminder")).all()
    assert READABLE.match(mail.context["next_due"]), mail.context


def test_refund_texts_end_with_one_full_stop(db, stripe_app):
    c = ph.cohort(deposit_minor=50000, starts_at=now_utc() + timedelta(days=45))
    c.refund_policy = "Full refund until 60 days before."
    enr = ph.applicant(c)
    db.session.commit()
    client = ph.signed_in(stripe_app, enr.participant)
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    # the policy is written from the tiers, then the cohort's own notes: one full stop between and at the end
    policy = page.split('data-testid="refund-policy">', 1)[1].split("</p>", 1)[0]
    assert policy.endswith("Full refund until 60 days before.") and ".." not in page, policy
    client.post(f"/me/enrollments/{enr.id}/withdraw", data={"reason": "Work trip."})
    page = client.get(f"/me/enrollments/{enr.id}").get_data(as_text=True)
    assert "Withdrawn — Work trip." in page and "Work trip.." not in page
