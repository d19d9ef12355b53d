"""flask commands: seed-demo, users, tokens (and the groups later features register)."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import AppGroup

from retreat.cli.transaction import committed
from retreat.extensions import db

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Manage personal API tokens.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["participant", "facilitator", "provider", "finance", "admin"]))
@click.option("--name", required=True)
@click.option("--password", default=None, help="Set this password instead of printing a one-time one.")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--org", "org_name", default=None, help="Provider organisation (providers only; created if new).")
def users_create(email, role, name, password, tz, org_name):
    """Create a verified account; prints a one-time password unless --password is given."""
    from sqlalchemy import select

    from retreat.accounts import users as accounts
    from retreat.accounts.models import ProviderOrganization

    one_time = password is None
    password = password or secrets.token_urlsafe(12)
    with committed():
        org = None
        if role == "provider":
            if not org_name:
                raise click.UsageError("--org is required for providers")
            org = db.session.scalar(select(ProviderOrganization).where(ProviderOrganization.name == org_name))
            org = org or accounts.create_provider_organization(org_name)
        user = accounts.create_user(email=email, name=name, role=role, password=password, tz=tz,
                                    verified=True, provider_organization=org)
    click.echo(f"Created {user.role} {user.email} (id {user.id}).")
    if one_time:
        click.echo(f"One-time password: {password}")
        click.echo("Ask them to change it after signing in.")


@tokens_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", default="cli", show_default=True)
@click.option("--scope", "scopes", multiple=True,
              help="Limit the token to this scope (repeatable). Without any: the full access of the role.")
@click.option("--expires-days", type=int, default=None, help="Expire after this many days (1-3650); default never.")
def tokens_create(email, name, scopes, expires_days):
    """Create a personal API token for a staff member; printed once."""
    from retreat.accounts import api_tokens
    from retreat.accounts import users as accounts

    user = accounts.get_by_email(email)
    if user is None:
        raise click.ClickException(f"No account with email {email}.")
    with committed():  # an unknown scope, one the role may not hold or a bad expiry: refused, nothing written
        token, raw = api_tokens.create_token(user, name=name, scopes=list(scopes) or None,
                                             expires_at=api_tokens.expiry_from_days(expires_days))
    scope_text = ", ".join(token.scopes) if token.scopes else "all of the role"
    expiry = token.expires_at.isoformat() if token.expires_at else "never"
    click.echo(f"Token {token.prefix}... for {user.email} (scopes: {scope_text}; expires: {expiry}). "
               "Shown once; store it safely:")
    click.echo(raw)


@click.command("seed-demo")
def seed_demo():
    """Load demo data (idempotent) and print the demo logins."""
    from flask import current_app

    from retreat.cli import demo

    if current_app.config.get("ENV_NAME") == "production":
        click.echo("Refusing to run seed-demo under RETREAT_ENV=production: it creates accounts whose "
                   "password is published (create the first admin with: flask --app wsgi users create "
                   "--role admin ...)", err=True)
        raise SystemExit(2)

    with committed():
        logins = demo.seed()
    click.echo(f"Demo logins (password for all: {demo.DEMO_PASSWORD}):")
    for role, email in logins:
        click.echo(f"  {role:<12} {email}")


@click.command("seed-scale")
@click.option("--cohorts", default=200, show_default=True, type=int)
@click.option("--participants", default=20000, show_default=True, type=int)
@click.option("--ledger", default=100000, show_default=True, type=int, help="Ledger entries.")
@click.option("--outbox", default=200000, show_default=True, type=int, help="Outbox messages.")
@click.option("--force", is_flag=True, help="Seed even though the database holds other (real or demo) data.")
def seed_scale(cohorts, participants, ledger, outbox, force):
    """Bulk-load a benchmark data set (refuses a database with real data unless --force)."""
    from retreat.cli import scale_seed
    from retreat.timeutil import now_utc

    spec = scale_seed.ScaleSpec(cohorts=cohorts, participants=participants, ledger=ledger, outbox=outbox)
    with committed():
        report = scale_seed.seed(spec, now=now_utc(), force=force, echo=click.echo)
    if not report.created:
        click.echo("Already seeded with these figures; nothing changed.")
    click.echo(", ".join(f"{k} {v}" for k, v in report.counts.items()) + f" ({report.seconds:.1f} s)")
    click.echo(f"Every seeded account: <name>@{scale_seed.SEED_DOMAIN}, password {scale_seed.SEED_PASSWORD!r}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(seed_scale)
    from retreat.scheduler import scheduler_cli

    app.cli.add_command(scheduler_cli)
    from retreat.cli.keys import keys_cli

    app.cli.add_command(keys_cli)
    from retreat.cli.messages import messages_cli

    app.cli.add_command(messages_cli)
    from retreat.cli.finance import finance_cli

    app.cli.add_command(finance_cli)
