"""Factories for test data: small functions with sensible defaults, every field overridable."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from retreat.accounts import passwords
from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.models import ProviderLicense, ProviderOrganization, Role, User

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def n() -> int:
    return next(_seq)


def provider_org(name: str | None = None, **kw) -> ProviderOrganization:
    org = ProviderOrganization(name=name or f"Clinic {n()}", **kw)
    db.session.add(org)
    db.session.flush()
    return org


def user(role: str | Role = Role.PARTICIPANT, *, email: str | None = None, name: str | None = None,
         password: str | None = PASSWORD, tz: str = "America/Denver", verified: bool = True,
         org: ProviderOrganization | None = None, license_expires: date | None = None, **kw) -> User:
    role = Role(role)
    i = n()
    if role == Role.PROVIDER and org is None:
        org = provider_org()
    u = User(
        email=(email or f"{role.value}{i}@example.com").lower(),
        name=name or f"{role.value.title()} {i}",
        role=role.value,
        tz=tz,
        password_hash=passwords.hash_password(password) if password else None,
        email_verified_at=accounts.now_utc() if verified else None,
        provider_organization=org if role == Role.PROVIDER else None,
        **kw,
    )
    db.session.add(u)
    db.session.flush()
    if role == Role.PROVIDER:
        lic = ProviderLicense(user=u, number=f"LIC{i:05d}", state="CO",
                              expires_on=license_expires or (date.today() + timedelta(days=365)))
        db.session.add(lic)
        db.session.flush()
    return u
