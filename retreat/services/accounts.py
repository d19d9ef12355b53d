"""Accounts: creating users, passwords (Argon2id), authentication and roles."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime

import email_validator
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from retreat.extensions import db
from retreat.models import ProviderLicense, ProviderOrganization, Role, SiteSetting, User
from retreat.services import audit
from retreat.services.audit import RequestContext
from retreat.services.errors import Conflict, NotFound, ValidationFailed
from retreat.timeutil import is_valid_zone, now_utc

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10
# A real hash of a random password: verifying against it costs the same as a real account,
# so unknown emails cannot be told apart by timing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def normalize_email(email: str | None) -> str:
    return (email or "").strip().lower()


def validate_email(email: str) -> str:
    """Same rules as the forms' Email validator (the email_validator library), lower-cased."""
    norm = normalize_email(email)
    if not norm or len(norm) > 254 or not _EMAIL_RE.match(norm):
        raise ValidationFailed("Enter a valid email address.", field="email")
    try:
        email_validator.validate_email(norm, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValidationFailed("Enter a valid email address.", field="email") from exc
    return norm


def validate_password(password: str | None) -> str:
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Use at least {MIN_PASSWORD_LENGTH} characters for your password.", field="password"
        )
    if len(password) > 1024:
        raise ValidationFailed("That password is too long.", field="password")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Constant-work check; rehashes when the parameters have changed."""
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        ok = _hasher.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if user is None or not user.password_hash:
        return False
    if ok and _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return ok


def get_by_email(email: str) -> User | None:
    norm = normalize_email(email)
    if not norm:
        return None
    return db.session.scalar(select(User).where(func.lower(User.email) == norm))


def create_user(
    *,
    email: str,
    name: str,
    role: Role | str = Role.PARTICIPANT,
    password: str | None = None,
    tz: str = "UTC",
    verified: bool = False,
    provider_organization: ProviderOrganization | None = None,
    actor: User | None = None,
    ctx: RequestContext | None = None,
    now: datetime | None = None,
) -> User:
    now = now or now_utc()
    norm = validate_email(email)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Enter a name.", field="name")
    try:
        role = Role(role)
    except ValueError as exc:
        raise ValidationFailed(f"Unknown role {role!r}.", field="role") from exc
    if not is_valid_zone(tz):
        raise ValidationFailed("Choose a valid time zone.", field="tz")
    if role == Role.PROVIDER and provider_organization is None:
        raise ValidationFailed("A provider belongs to a provider organisation.", field="provider_organization")
    if get_by_email(norm) is not None:
        raise Conflict("An account with that email already exists.", field="email")
    user = User(
        email=norm,
        name=name,
        role=role.value,
        tz=tz,
        password_hash=hash_password(validate_password(password)) if password else None,
        email_verified_at=now if verified else None,
        provider_organization=provider_organization if role == Role.PROVIDER else None,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor=actor, object_type="user", object_id=user.id,
                 details={"role": role.value, "email": norm}, ctx=ctx, now=now)
    return user


def change_role(user: User, role: Role | str, *, actor: User, ctx: RequestContext | None = None,
                provider_organization: ProviderOrganization | None = None) -> User:
    try:
        new_role = Role(role)
    except ValueError as exc:
        raise ValidationFailed(f"Unknown role {role!r}.", field="role") from exc
    if new_role == Role.PROVIDER and provider_organization is None and user.provider_organization is None:
        raise ValidationFailed("A provider belongs to a provider organisation.", field="provider_organization")
    old = user.role
    if old == new_role.value and (provider_organization is None
                                  or provider_organization == user.provider_organization):
        return user
    if old == Role.ADMIN and new_role != Role.ADMIN and user.id == actor.id:
        raise Conflict("You cannot remove your own admin role.", field="role")
    user.role = new_role.value
    if new_role == Role.PROVIDER:
        user.provider_organization = provider_organization or user.provider_organization
    else:
        user.provider_organization = None
    user.session_version += 1  # a role change ends existing sessions
    audit.record("user.role_changed", actor=actor, object_type="user", object_id=user.id,
                 details={"from": old, "to": new_role.value}, ctx=ctx)
    return user


def set_password(user: User, password: str, *, actor: User | None = None,
                 ctx: RequestContext | None = None) -> None:
    user.password_hash = hash_password(validate_password(password))
    user.session_version += 1  # every other session ends
    audit.record("user.password_changed", actor=actor or user, object_type="user", object_id=user.id, ctx=ctx)


def logout_everywhere(user: User, *, ctx: RequestContext | None = None) -> None:
    user.session_version += 1
    audit.record("auth.logout_everywhere", actor=user, object_type="user", object_id=user.id, ctx=ctx)


def set_active(user: User, active: bool, *, actor: User, ctx: RequestContext | None = None) -> None:
    if user.id == actor.id and not active:
        raise Conflict("You cannot deactivate your own account.")
    if user.is_active_account == active:
        return
    user.is_active_account = active
    user.session_version += 1
    audit.record("user.activated" if active else "user.deactivated", actor=actor,
                 object_type="user", object_id=user.id, ctx=ctx)


def create_provider_organization(name: str, *, contact_email: str | None = None,
                                 actor: User | None = None, ctx: RequestContext | None = None) -> ProviderOrganization:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Enter the organisation's name.", field="name")
    if db.session.scalar(select(ProviderOrganization).where(func.lower(ProviderOrganization.name) == name.lower())):
        raise Conflict("An organisation with that name already exists.", field="name")
    org = ProviderOrganization(name=name, contact_email=normalize_email(contact_email) or None)
    db.session.add(org)
    db.session.flush()
    audit.record("provider_org.created", actor=actor, object_type="provider_organization",
                 object_id=org.id, ctx=ctx)
    return org


def add_license(user: User, *, number: str, state: str, expires_on: date, kind: str = "MD",
                actor: User | None = None, ctx: RequestContext | None = None) -> ProviderLicense:
    if user.role != Role.PROVIDER:
        raise ValidationFailed("Only providers hold licences.", field="user")
    number = (number or "").strip()
    state = (state or "").strip().upper()
    if not number:
        raise ValidationFailed("Enter the licence number.", field="number")
    if not (2 <= len(state) <= 8):
        raise ValidationFailed("Enter the licensing state, e.g. CO.", field="state")
    lic = ProviderLicense(user=user, number=number, state=state, kind=kind, expires_on=expires_on)
    db.session.add(lic)
    db.session.flush()
    audit.record("provider_license.added", actor=actor, object_type="provider_license", object_id=lic.id,
                 details={"user_id": user.id, "state": state, "expires_on": expires_on.isoformat()}, ctx=ctx)
    return lic


def valid_license_on(user: User, day: date) -> ProviderLicense | None:
    for lic in user.licenses:
        if lic.is_valid_on(day):
            return lic
    return None


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


# Site settings --------------------------------------------------------------------------------

REQUIRE_STAFF_TOTP = "require_staff_totp"


def get_setting(key: str, default: str | None = None) -> str | None:
    row = db.session.get(SiteSetting, key)
    return row.value if row is not None else default


def set_setting(key: str, value: str, *, actor: User | None = None, ctx: RequestContext | None = None) -> None:
    row = db.session.get(SiteSetting, key)
    old = row.value if row else None
    if row is None:
        db.session.add(SiteSetting(key=key, value=value))
    else:
        row.value = value
    if old != value:
        audit.record("setting.changed", actor=actor, object_type="setting", object_id=key,
                     details={"from": old, "to": value}, ctx=ctx)


def staff_totp_required() -> bool:
    return get_setting(REQUIRE_STAFF_TOTP, "0") == "1"
