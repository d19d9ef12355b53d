"""`flask finance reconcile [--since] [--until]`: a run from the command line, with its report."""

from __future__ import annotations

from sqlalchemy import select

from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun
from retreat.timeutil import now_utc
from tests import payments_helpers as ph


def test_reconcile_from_the_command_line_reports_a_missed_payment(db, stripe_app):
    c = ph.cohort(capacity=2, deposit_minor=25000)
    enr = ph.applicant(c)
    db.session.commit()
    _, pi = ph.start_and_confirm(enr)  # no webhook: the ledger does not know it
    today = now_utc().date().isoformat()
    runner = stripe_app.test_cli_runner()

    res = runner.invoke(args=["finance", "reconcile", "--since", today, "--page-size", "5"])
    assert res.exit_code == 0, res.output
    run = db.session.scalars(select(ReconciliationRun)).one()
    assert run.status == "done" and run.since.date().isoformat() == today
    item = db.session.scalars(select(ReconciliationItem).where(
        ReconciliationItem.run_id == run.id, ReconciliationItem.match_key == f"charge:{pi['id']}")).one()
    assert f"Run #{run.id}:" in res.output and "In Stripe, not in the ledger" in res.output
    assert f"#{item.id} charge {item.stripe_object_id} Stripe 25000 USD enrollment #{enr.id}" in res.output
    assert "Next run starts at" in res.output

    second = runner.invoke(args=["finance", "reconcile"])  # from the first run's cursor
    assert second.exit_code == 0, second.output
    runs = db.session.scalars(select(ReconciliationRun).order_by(ReconciliationRun.id)).all()
    assert len(runs) == 2 and runs[1].since == runs[0].cursor


def test_bad_dates_on_the_command_line_change_nothing(app, db):
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["finance", "reconcile", "--since", "2026-13-01"])
    assert bad.exit_code == 2 and "does not match the format '%Y-%m-%d'" in bad.output
    backwards = runner.invoke(args=["finance", "reconcile", "--since", "2026-03-10", "--until", "2026-03-01"])
    assert backwards.exit_code == 1 and "The end date is before the start date." in backwards.output
    assert db.session.scalars(select(ReconciliationRun)).first() is None
