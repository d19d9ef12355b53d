"""flask finance ...: Stripe reconciliation from the command line.

    flask --app wsgi finance reconcile [--since YYYY-MM-DD] [--until YYYY-MM-DD]

Dates are whole UTC days (``--until`` includes its day). Without ``--since`` the run starts where
the last finished run's cursor stopped (the first run reads all of Stripe).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import click
from flask.cli import AppGroup

from retreat.extensions import db

finance_cli = AppGroup("finance", help="Finance: Stripe reconciliation; numbering historical receipts.")

DAY = click.DateTime(formats=["%Y-%m-%d"])


def _start_of(day: datetime | None) -> datetime | None:
    return None if day is None else datetime.combine(day.date(), time(0), UTC)


def _end_of(day: datetime | None) -> datetime | None:
    return None if day is None else datetime.combine(day.date() + timedelta(days=1), time(0), UTC) - timedelta(
        microseconds=1)


@finance_cli.command("reconcile")
@click.option("--since", type=DAY, default=None, help="Stripe objects created on or after this UTC day.")
@click.option("--until", type=DAY, default=None, help="... and on or before this UTC day (default: now).")
@click.option("--page-size", type=click.IntRange(1, 100), default=100, show_default=True,
              help="Objects asked of Stripe per page.")
@click.option("--show", type=click.IntRange(0, 1000), default=20, show_default=True,
              help="Problems listed per category at the end.")
def reconcile(since, until, page_size, show):
    """Match Stripe's charges, refunds, fees, disputes and payouts to the ledger, with a progress bar."""
    from retreat.core.errors import DomainError
    from retreat.finance import reconciliation, reconciliation_report
    from retreat.finance.reconciliation_models import RunStatus
    from retreat.timeutil import now_utc

    now = now_utc()
    with click.progressbar(length=1, label="Reconciling", show_pos=True, item_show_func=lambda _: None) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(1, total)
            bar.update(max(0, done - bar.pos))

        try:
            run = reconciliation.run(since=_start_of(since), until=_end_of(until), now=now, progress=progress,
                                     page_size=page_size)
        except DomainError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from exc
    window = (f"{run.since:%Y-%m-%d %H:%M} UTC" if run.since else "the beginning") + \
        f" to {run.until:%Y-%m-%d %H:%M} UTC"
    if run.status != RunStatus.DONE:
        raise click.ClickException(f"Run #{run.id} failed: {run.error}")
    click.echo(f"Run #{run.id}: {run.objects_seen} Stripe objects from {window}, {run.payouts_count} payouts.")
    counts = reconciliation_report.counts(run)
    for category in reconciliation_report.CATEGORY_ORDER:
        click.echo(f"  {reconciliation_report.CATEGORY_LABELS[category]:<32} {counts[category]:>8}")
    for category in reconciliation_report.CATEGORY_ORDER[:-1]:
        if not counts[category] or not show:
            continue
        click.echo(f"{reconciliation_report.CATEGORY_LABELS[category]}:")
        for item in reconciliation_report.items(run.id, category, per_page=show).items:
            amount = "" if item.stripe_amount_minor is None else f" Stripe {item.stripe_amount_minor} {item.stripe_currency}"
            booked = "" if item.ledger_amount_minor is None else f" ledger {item.ledger_amount_minor} {item.ledger_currency}"
            enr = f" enrollment #{item.enrollment_id}" if item.enrollment_id else ""
            click.echo(f"  #{item.id} {item.kind} {item.stripe_object_id}{amount}{booked}{enr}: {item.note}")
    cursor = f"{run.cursor:%Y-%m-%d %H:%M:%S} UTC" if run.cursor else "-"
    click.echo(f"Next run starts at {cursor}. Repair items on the finance console's reconciliation page.")


@finance_cli.command("issue-missing-documents")
def issue_missing_documents():
    """Number the receipts and credit notes of charges and refunds recorded before documents
    existed, in ledger order. Idempotent: a second run issues nothing."""
    from retreat.payments import documents
    from retreat.timeutil import now_utc

    issued = documents.issue_missing(now=now_utc())
    db.session.commit()
    click.echo(f"Issued {issued} document(s)." if issued else "Every charge and refund already has its document.")
