"""`flask users create` and `flask tokens create`."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.core.crypto import hash_token
from retreat.models import ApiToken


@pytest.fixture()
def cli(app, db):
    return app.test_cli_runner()


def test_users_create_prints_a_one_time_password_that_works(cli, client, db):
    r = cli.invoke(args=["users", "create", "--email", "Fin@Example.com", "--role", "finance", "--name", "Fin",
                         "--tz", "America/New_York"])
    assert r.exit_code == 0, r.output
    password = re.search(r"One-time password: (\S+)", r.output).group(1)
    user = accounts.get_by_email("fin@example.com")
    assert user.role == "finance" and user.email_verified and user.tz == "America/New_York"
    assert client.post("/account/login", data={"email": "fin@example.com", "password": password}).status_code == 302


def test_users_create_refuses_duplicate_email(cli, db):
    args = ["users", "create", "--email", "dup@example.com", "--role", "admin", "--name", "Dup",
            "--password", "a-long-password-1"]
    assert cli.invoke(args=args).exit_code == 0
    r = cli.invoke(args=[*args[:2], "--email", "DUP@example.com", *args[4:]])
    assert r.exit_code != 0 and "already exists" in r.output


def test_provider_needs_an_org(cli, db):
    r = cli.invoke(args=["users", "create", "--email", "doc@example.com", "--role", "provider", "--name", "Doc"])
    assert r.exit_code != 0 and "--org" in r.output and accounts.get_by_email("doc@example.com") is None
    r = cli.invoke(args=["users", "create", "--email", "doc@example.com", "--role", "provider", "--name", "Doc",
                         "--org", "Front Range Medical"])
    assert r.exit_code == 0, r.output
    assert accounts.get_by_email("doc@example.com").provider_organization.name == "Front Range Medical"


def test_tokens_create_for_staff_only(cli, db):
    cli.invoke(args=["users", "create", "--email", "ops@example.com", "--role", "admin", "--name", "Ops"])
    r = cli.invoke(args=["tokens", "create", "--email", "ops@example.com", "--name", "laptop"])
    assert r.exit_code == 0, r.output
    raw = r.output.strip().splitlines()[-1]
    assert raw.startswith("rt_")
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    assert token.user.email == "ops@example.com" and token.name == "laptop"  # only the hash is stored
    cli.invoke(args=["users", "create", "--email", "pp@example.com", "--role", "participant", "--name", "P"])
    r = cli.invoke(args=["tokens", "create", "--email", "pp@example.com"])
    assert r.exit_code != 0 and "staff" in r.output
    r = cli.invoke(args=["tokens", "create", "--email", "ghost@example.com"])
    assert r.exit_code != 0 and "No account" in r.output
