"""`flask messages ...`: dispatch once, list and retry outbox messages."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import AppGroup

from retreat.cli.transaction import committed

messages_cli = AppGroup("messages", help="Inspect and send outbox messages.")


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@messages_cli.command("dispatch")
@click.option("--now", "now_", default=None, help="Pretend it is this ISO 8601 time (default: the clock).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=None)
@click.option("--max-batches", type=click.IntRange(1), default=None)
def dispatch(now_, batch_size, max_batches):
    """Send every due message once (one pass) and print a summary."""
    from retreat.messaging.dispatcher import dispatch_due

    result = dispatch_due(_parse_now(now_), batch_size=batch_size, max_batches=max_batches)
    click.echo(str(result))
    for line in result.errors[:20]:
        click.echo(f"  {line}", err=True)


@messages_cli.command("deliver-webhooks")
@click.option("--now", "now_", default=None, help="Pretend it is this ISO 8601 time (default: the clock).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=None)
@click.option("--max-batches", type=click.IntRange(1), default=None)
def deliver_webhooks(now_, batch_size, max_batches):
    """Send every due webhook delivery once (one pass) and print a summary."""
    from retreat.messaging.webhook_dispatcher import deliver_due

    click.echo(str(deliver_due(_parse_now(now_), batch=batch_size, max_batches=max_batches)))


@messages_cli.command("list")
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed", "cancelled"]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def list_(status, limit):
    """Show messages, failed first."""
    from retreat.messaging import outbox

    counts = outbox.count_by_status()
    click.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))
    for m in outbox.list_messages(status=status, limit=limit):
        due = m.next_attempt_at.strftime("%Y-%m-%d %H:%M UTC")
        error = f"  [{(m.last_error or '')[:60]}]" if m.last_error else ""
        click.echo(f"{m.id:>7} {m.status:<9} {m.attempts:>2} {due}  {m.template:<24} {m.recipient_email}{error}")


@messages_cli.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Retry every failed message.")
def retry(ids, all_failed):
    """Queue failed messages again, due now (audited)."""
    from retreat.core.errors import DomainError
    from retreat.messaging import outbox

    if all_failed:
        ids = [m.id for m in outbox.list_messages(status="failed", limit=1000)]
    if not ids:
        raise click.UsageError("give message ids or --all-failed")
    done = 0
    with committed():
        for message_id in ids:
            try:
                outbox.retry(message_id, actor=None, actor_email="cli")
                done += 1
            except DomainError as exc:  # refused before it changed anything: report it, go on
                click.echo(f"{message_id}: {exc.message}", err=True)
    click.echo(f"{done} message(s) queued again.")
