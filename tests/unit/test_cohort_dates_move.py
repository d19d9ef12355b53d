"""Item 15: moving a cohort's dates moves the checklist due dates and their reminders, and (for a
cohort without its own balance date) the balance installments and their reminders."""

from datetime import date, timedelta

from sqlalchemy import select

from retreat.cohorts import catalog, enrollment, seats
from retreat.extensions import db
from retreat.models import OutboxMessage
from retreat.payments import checkout
from tests import factories
from tests import factories_cohorts as fc
from tests.factories_cohorts import NOW


def _move(c, days, **kw):
    fc.new_request()
    data = catalog.CohortInput(
        title=c.title, starts_at=c.starts_at + timedelta(days=days), ends_at=c.ends_at + timedelta(days=days),
        timezone=c.timezone, capacity=c.capacity, currency=c.currency, price_minor=c.price_minor,
        deposit_minor=c.deposit_minor, balance_due_on=kw.get("balance_due_on", c.balance_due_on),
        refund_policy=c.refund_policy or "", deposit_timing=c.deposit_timing,
        provider_organization_id=c.provider_organization_id)
    catalog.save_cohort(c, c.retreat, data, actor=factories.user("facilitator", password=None), now=NOW)
    fc.new_request()


def _msg(key):
    db.session.expire_all()
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))


def test_checklist_due_dates_and_their_reminders_follow_the_start(db):
    c = fc.cohort(starts_at=NOW + timedelta(days=60))
    enr = fc.applicant(c)
    item = next(i for i in enr.checklist if i.key == "intention")
    before, reminder = item.due_at, _msg(f"prep-{item.id}-reminder")
    reminder_at = reminder.due_at
    assert reminder.status == "pending" and before == c.starts_at - timedelta(days=21)
    _move(c, 14)
    db.session.expire_all()
    assert item.due_at == before + timedelta(days=14)
    moved = _msg(f"prep-{item.id}-reminder")
    assert moved.status == "pending" and moved.due_at == reminder_at + timedelta(days=14)
    assert moved.context["due_local"].startswith((item.due_at - timedelta(hours=7)).strftime("%a %d %b %Y"))


def _with_plan(c):
    enr = fc.applicant(c)
    seats.take_hold(enr, now=NOW, actor=None)
    enrollment.confirm_seat(enr, now=NOW, actor=None)
    checkout.choose_plan(enr, 2, now=NOW, actor=enr.participant)
    return enr


def test_installments_and_their_reminders_follow_the_start_when_no_balance_date_was_typed(db):
    c = fc.cohort(starts_at=NOW + timedelta(days=60))
    enr = _with_plan(c)
    first, last = checkout.current_installments(enr)
    due, reminder_at = last.due_on, _msg(f"installment-{last.id}-due7").due_at
    _move(c, 21)
    db.session.expire_all()
    assert last.due_on == due + timedelta(days=21) and first.due_on > NOW.date()
    moved = _msg(f"installment-{last.id}-due7")
    assert moved.status == "pending" and moved.due_at == reminder_at + timedelta(days=21)
    assert moved.context["due_on"] == last.due_on.isoformat()


def test_a_balance_date_the_facilitator_typed_stays(db):
    c = fc.cohort(starts_at=NOW + timedelta(days=60), balance_due_on=date(2026, 4, 1))
    enr = _with_plan(c)
    due = [i.due_on for i in checkout.current_installments(enr)]
    _move(c, 21)
    db.session.expire_all()
    assert [i.due_on for i in checkout.current_installments(enr)] == due and c.balance_due_on == date(2026, 4, 1)
