"""Accounts: creating users, roles, provider organisations and licences, site settings, sign-up,
verification and password reset (the hashes themselves: ``retreat.accounts.passwords``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

import email_validator
from flask import current_app
from sqlalchemy import bindparam, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import make_transient_to_detached

from retreat import audit
from retreat.accounts import sessions
from retreat.accounts.models import ProviderLicense, ProviderOrganization, Role, SiteSetting, User
from retreat.accounts.passwords import hash_password, validate_password, verify_password
from retreat.accounts.regions import normalize_region
from retreat.accounts.sessions import UserSession
from retreat.core.cache import Cache
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import is_valid_zone, now_utc

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


def get_by_email(email: str) -> User | None:
    norm = normalize_email(email)
    if not norm:
        return None
    # Emails are stored lower-cased (CHECK email = lower(email)), so a plain equality finds them
    # through the unique index; lower(email) = ... read every account (18 ms at 20,000 users).
    return db.session.scalar(select(User).where(User.email == norm))


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


_USER_PROPS = list(sa_inspect(User).column_attrs)
_USER_KEYS = [prop.key for prop in _USER_PROPS]


@lru_cache(maxsize=2)
def _guest_insert(dialect: str):
    """``guest_account``'s statement, built once (constructing it costs more than running it). A Core
    insert: the ORM's bulk insert with RETURNING an entity costs more than the round trip itself."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = bindparam("now", type_=User.__table__.c.created_at.type)
    return (insert(User.__table__)
            .values(email=bindparam("email"), name=bindparam("name"), role=Role.PARTICIPANT.value, tz=bindparam("tz"),
                    password_hash=None, email_verified_at=None, created_at=now, updated_at=now)
            .on_conflict_do_nothing().returning(*[prop.columns[0] for prop in _USER_PROPS]))


def guest_account(*, email: str, name: str, tz: str, ctx: RequestContext | None = None,
                  now: datetime | None = None) -> tuple[User, bool]:
    """The account with ``email`` (already validated and lower-cased), or a new unverified participant
    without a password: ``(user, created)``. One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` when
    the email is new, plus one SELECT when an account exists already (or was just created by a
    concurrent request: the insert waits for that transaction and then finds the row)."""
    now = now or now_utc()
    stmt = _guest_insert(db.session.get_bind().dialect.name)
    row = db.session.execute(stmt, {"email": email, "name": name, "tz": tz if is_valid_zone(tz) else "UTC",
                                    "now": now}).first()
    user = None
    if row is not None:  # the new row, put in the session as the persistent object it is (no reload)
        user = User(**{key: row[i] for i, key in enumerate(_USER_KEYS)})
        make_transient_to_detached(user)
        db.session.add(user)
    if user is None:
        user = get_by_email(email)
        if user is None:  # pragma: no cover - a conflict on email means the row exists
            raise Conflict("An account with that email already exists.", field="email")
        return user, False
    audit.record("user.created", object_type="user", object_id=user.id,
                 details={"role": Role.PARTICIPANT.value, "email": email}, ctx=ctx, now=now)
    return user, True


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
    sessions.end_all(user, sessions.EndReason.ROLE_CHANGED)  # a role change ends existing sessions
    audit.record("user.role_changed", actor=actor, object_type="user", object_id=user.id,
                 details={"from": old, "to": new_role.value}, ctx=ctx)
    return user


def set_password(user: User, password: str, *, actor: User | None = None,
                 ctx: RequestContext | None = None, keep_session: UserSession | None = None) -> None:
    """Every session ends but ``keep_session`` (the device that changed it, if any)."""
    user.password_hash = hash_password(validate_password(password))
    sessions.end_all(user, sessions.EndReason.PASSWORD_CHANGED, keep=keep_session)
    audit.record("user.password_changed", actor=actor or user, object_type="user", object_id=user.id, ctx=ctx)


def logout_everywhere(user: User, *, ctx: RequestContext | None = None) -> None:
    sessions.end_all(user, sessions.EndReason.SIGN_OUT_EVERYWHERE)
    audit.record("auth.logout_everywhere", actor=user, object_type="user", object_id=user.id, ctx=ctx)


def set_active(user: User, active: bool, *, actor: User, ctx: RequestContext | None = None) -> None:
    if user.id == actor.id and not active:
        raise Conflict("You cannot deactivate your own account.")
    if user.is_active_account == active:
        return
    user.is_active_account = active
    if not active:
        sessions.end_all(user, sessions.EndReason.DEACTIVATED)
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
    code = normalize_region(state)
    if not number:
        raise ValidationFailed("Enter the licence number.", field="number")
    if code is None:
        raise ValidationFailed("Choose the licensing state or region (a code such as CO).", field="state")
    state = code
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


def provider_contacts(organization_id: int) -> list[User | str]:
    """Who hears about an organisation's referrals and alerts: its active providers, or its contact
    email while it has none (an empty list when it has neither)."""
    members = list(db.session.scalars(select(User).where(
        User.provider_organization_id == organization_id, User.role == Role.PROVIDER.value,
        User.is_active_account.is_(True)).order_by(User.id)))
    if members:
        return members
    org = db.session.get(ProviderOrganization, organization_id)
    return [org.contact_email] if org is not None and org.contact_email else []


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
    _STAFF_TOTP.clear()  # this process sees its own change at once
    row = db.session.get(SiteSetting, key)
    old = row.value if row else None
    if row is None:
        db.session.add(SiteSetting(key=key, value=value))
    else:
        row.value = value
    if old != value:
        audit.record("setting.changed", actor=actor, object_type="setting", object_id=key,
                     details={"from": old, "to": value}, ctx=ctx)


# Read on every staff request: each process keeps it SETTINGS_CACHE_SECONDS (default 10; off in
# tests unless set), so other processes follow an admin's change within that time.
def _settings_ttl() -> float:
    return float(current_app.config.get("SETTINGS_CACHE_SECONDS", 0 if current_app.testing else 10) or 0)


_STAFF_TOTP = Cache("staff two-factor setting", max_entries=1, ttl=_settings_ttl)


def staff_totp_required() -> bool:
    """The admins' choice; until they make one, the config's default (on in production)."""
    default = "1" if current_app.config.get("REQUIRE_STAFF_TOTP_DEFAULT") else "0"
    return _STAFF_TOTP.get_or_compute(REQUIRE_STAFF_TOTP, lambda: get_setting(REQUIRE_STAFF_TOTP, default) == "1")


# Self-service: sign-up, email verification, password reset, profile ---------------------------
# (links and emails come from retreat.accounts.tokens and the outbox)

_PHONE_RE = re.compile(r"^\+?[0-9 ().-]{5,30}$")


@dataclass
class SignupResult:
    """``user`` is the new account, or None when the email already had one (the page must not say)."""

    user: User | None
    email: str


def _stamp(now: datetime) -> int:
    return int(now.timestamp())


def _validate_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Enter your name.", field="name")
    if len(name) > 200:
        raise ValidationFailed("Use at most 200 characters for your name.", field="name")
    return name


def _validate_zone(tz: str | None) -> str:
    if not is_valid_zone(tz):
        raise ValidationFailed("Choose a valid time zone.", field="tz")
    return tz  # type: ignore[return-value]


def sign_up(*, name: str, email: str, password: str, tz: str, ctx: RequestContext | None = None,
            now: datetime | None = None) -> SignupResult:
    """Create an unverified participant and queue the verification email.

    An email that already has an account gets a "someone tried to sign up with your address"
    notice instead, and the caller shows the same outcome either way (no enumeration).
    """
    from retreat.accounts import tokens as account_tokens
    from retreat.messaging import outbox

    now = now or now_utc()
    name = _validate_name(name)
    norm = validate_email(email)
    validate_password(password)
    tz = _validate_zone(tz)
    existing = get_by_email(norm)
    if existing is not None:
        hash_password(password)  # the same work as a real sign-up, so timing does not tell
        outbox.enqueue(
            template="signup_existing_account", to_user=existing,
            dedupe_key=f"signup-existing:{existing.id}:{_stamp(now)}",
            context={"name": existing.name,
                     "login_url": account_tokens.external_url("account.login"),
                     "reset_url": account_tokens.external_url("account.forgot_password")},
            now=now,
        )
        audit.record("user.signup_existing_email", actor_email=norm, object_type="user",
                     object_id=existing.id, ctx=ctx, now=now)
        return SignupResult(None, norm)
    user = create_user(email=norm, name=name, password=password, tz=tz, role=Role.PARTICIPANT,
                       ctx=ctx, now=now)
    send_verification(user, now=now)
    return SignupResult(user, norm)


def send_verification(user: User, *, now: datetime | None = None):
    """Queue a fresh verification link (one per user per second); nothing if already verified."""
    from retreat.accounts import tokens as account_tokens
    from retreat.messaging import outbox

    now = now or now_utc()
    if user.email_verified:
        return None
    return outbox.enqueue(
        template="verify_email", to_user=user, dedupe_key=f"verify-email:{user.id}:{_stamp(now)}",
        context={"name": user.name, "expires_days": max(1, current_app.config["EMAIL_VERIFY_MAX_AGE"] // 86400)},
        private={"verify_url": account_tokens.verify_url(user, now=now)}, now=now,
    )


def verify_email(token: str, *, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> tuple[User, bool]:
    """Mark the address verified. Returns (user, already_verified). Raises TokenExpired/TokenInvalid."""
    from retreat.accounts import tokens as account_tokens

    now = now or now_utc()
    try:
        user = account_tokens.load_verify_token(token, now=now)
    except account_tokens.TokenExpired as exc:
        user = db.session.get(User, exc.user_id) if exc.user_id else None
        if user is not None and user.email_verified:
            return user, True  # an old link clicked after verifying: nothing to fix
        raise
    if user.email_verified:
        return user, True
    user.email_verified_at = now
    audit.record("user.email_verified", actor=user, object_type="user", object_id=user.id,
                 details={"email": user.email}, ctx=ctx, now=now)
    return user, False


def resend_verification_for_token(token: str, *, now: datetime | None = None):
    """Resend from an expired link: only a genuinely signed (merely expired) token names a user."""
    from retreat.accounts import tokens as account_tokens

    now = now or now_utc()
    try:
        user = account_tokens.load_verify_token(token, now=now)
    except account_tokens.TokenExpired as exc:
        user = db.session.get(User, exc.user_id) if exc.user_id else None
    except account_tokens.TokenInvalid:
        return None
    if user is None or not user.is_active:
        return None
    return send_verification(user, now=now)


def request_password_reset(email: str, *, ctx: RequestContext | None = None,
                           now: datetime | None = None) -> None:
    """Queue a reset link if the address has an active account. Says nothing either way."""
    from retreat.accounts import tokens as account_tokens
    from retreat.messaging import outbox

    now = now or now_utc()
    user = get_by_email(email)
    if user is None or not user.is_active:
        audit.record("user.password_reset_requested", actor_email=normalize_email(email)[:254],
                     details={"known": False}, ctx=ctx, now=now)
        return
    outbox.enqueue(
        template="password_reset", to_user=user, dedupe_key=f"password-reset:{user.id}:{_stamp(now)}",
        context={"name": user.name, "expires_minutes": max(1, current_app.config["PASSWORD_RESET_MAX_AGE"] // 60),
                 "forgot_url": account_tokens.external_url("account.forgot_password")},
        private={"reset_url": account_tokens.reset_url(user, now=now)}, now=now,
    )
    audit.record("user.password_reset_requested", actor=user, object_type="user", object_id=user.id,
                 details={"known": True}, ctx=ctx, now=now)


def reset_password(token: str, password: str, *, ctx: RequestContext | None = None,
                   now: datetime | None = None) -> User:
    """Set a new password from a reset link; the link dies with it (single use)."""
    from retreat.accounts import tokens as account_tokens

    now = now or now_utc()
    user = account_tokens.load_reset_token(token, now=now)
    validate_password(password)
    set_password(user, password, ctx=ctx)
    audit.record("user.password_reset", actor=user, object_type="user", object_id=user.id, ctx=ctx, now=now)
    if not user.email_verified:
        user.email_verified_at = now  # following a link sent to the address proves it
    _notify_password_changed(user, now=now)
    return user


def change_password(user: User, current_password: str, new_password: str, *,
                    ctx: RequestContext | None = None, now: datetime | None = None,
                    keep_session: UserSession | None = None) -> None:
    """Other sessions end; ``keep_session`` (the device asking) stays signed in."""
    now = now or now_utc()
    if not verify_password(user, current_password or ""):
        audit.record("user.password_change_failed", actor=user, object_type="user", object_id=user.id,
                     ctx=ctx, now=now)
        raise ValidationFailed("Your current password is not correct.", field="current_password")
    validate_password(new_password)
    set_password(user, new_password, ctx=ctx, keep_session=keep_session)
    _notify_password_changed(user, now=now)


def _notify_password_changed(user: User, *, now: datetime) -> None:
    from retreat.accounts import tokens as account_tokens
    from retreat.messaging import outbox
    from retreat.timeutil import format_local

    outbox.enqueue(
        template="password_changed", to_user=user, dedupe_key=f"password-changed:{user.id}:{_stamp(now)}",
        context={"name": user.name, "changed_at": format_local(now, user.tz),
                 "reset_url": account_tokens.external_url("account.forgot_password")},
        now=now,
    )


def update_profile(user: User, *, name: str, tz: str, phone: str | None, marketing_opt_out: bool,
                   ctx: RequestContext | None = None) -> list[str]:
    """Edit one's own details. Returns the names of the fields that changed."""
    name = _validate_name(name)
    tz = _validate_zone(tz)
    phone = (phone or "").strip() or None
    if phone is not None and not _PHONE_RE.match(phone):
        raise ValidationFailed("Enter a phone number using digits, spaces and + ( ) - only.", field="phone")
    new = {"name": name, "tz": tz, "phone": phone, "marketing_opt_out": bool(marketing_opt_out)}
    changed = [k for k, v in new.items() if getattr(user, k) != v]
    for k in changed:
        setattr(user, k, new[k])
    if changed:
        audit.record("user.profile_updated", actor=user, object_type="user", object_id=user.id,
                     details={"fields": changed}, ctx=ctx)
    return changed
