"""What admins do to accounts: find users, create staff, sign out, reset two-factor,
provider organisations and licences. Plain functions; the admin console and the API call them."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload

from retreat import audit
from retreat.accounts import sessions
from retreat.accounts import users as accounts
from retreat.accounts.models import STAFF_ROLES, ProviderLicense, ProviderOrganization, Role, User
from retreat.accounts.regions import normalize_region
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.core.pagination import Batch, first_of
from retreat.extensions import db

LICENSE_KINDS = ("MD", "DO", "NP", "PA", "RN", "PharmD", "Other")


def search_users(*, q: str | None = None, role: str | None = None, active: bool | None = None) -> Select:
    """Users matching a name/email fragment, a role and an active flag; ordered by name, then id."""
    stmt = select(User).order_by(func.lower(User.name), User.id)
    q = (q or "").strip().lower()
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(func.lower(User.name).like(like, escape="\\"),
                              func.lower(User.email).like(like, escape="\\")))
    if role:
        try:
            stmt = stmt.where(User.role == Role(role).value)
        except ValueError as exc:
            raise ValidationFailed(f"Unknown role {role!r}.", field="role") from exc
    if active is not None:
        stmt = stmt.where(User.is_active_account.is_(active))
    return stmt


def create_staff_user(*, email: str, name: str, role: str, tz: str,
                      provider_organization: ProviderOrganization | None, actor: User,
                      ctx: RequestContext | None = None, now: datetime | None = None) -> tuple[User, str]:
    """A verified staff account with a one-time password, returned once and never stored in clear."""
    try:
        role_enum = Role(role)
    except ValueError as exc:
        raise ValidationFailed(f"Unknown role {role!r}.", field="role") from exc
    if role_enum not in STAFF_ROLES:
        raise ValidationFailed("Participants create their own accounts; choose a staff role.", field="role")
    if provider_organization is not None and not provider_organization.is_active:
        raise ValidationFailed("That organisation is deactivated.", field="provider_organization")
    password = secrets.token_urlsafe(12)
    user = accounts.create_user(email=email, name=name, role=role_enum, password=password, tz=tz, verified=True,
                                provider_organization=provider_organization, actor=actor, ctx=ctx, now=now)
    return user, password


def sign_out_everywhere(user: User, *, actor: User, ctx: RequestContext | None = None) -> None:
    """Ends every server session of ``user``: their cookies, remember-me included, are dead."""
    sessions.end_all(user, sessions.EndReason.ADMIN_SIGN_OUT)
    audit.record("user.signed_out_everywhere", actor=actor, object_type="user", object_id=user.id, ctx=ctx)


def reset_totp(user: User, *, actor: User, ctx: RequestContext | None = None) -> None:
    """Removes two-factor (lost phone). Their sessions end; they set it up again at next sign-in."""
    if not user.totp_secret and user.totp_enabled_at is None:
        return
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    sessions.end_all(user, sessions.EndReason.TOTP_RESET)
    audit.record("user.totp_reset", actor=actor, object_type="user", object_id=user.id, ctx=ctx)


def add_license(user: User, *, number: str, state: str, kind: str, expires_on: date | None, actor: User,
                ctx: RequestContext | None = None) -> ProviderLicense:
    if kind not in LICENSE_KINDS:
        raise ValidationFailed("Choose a licence kind.", field="kind")
    if expires_on is None:
        raise ValidationFailed("Enter the expiry date as YYYY-MM-DD.", field="expires_on")
    duplicate = db.session.scalar(select(ProviderLicense).where(
        ProviderLicense.user_id == user.id, ProviderLicense.number == (number or "").strip(),
        ProviderLicense.state == (normalize_region(state) or "")))
    if duplicate is not None:
        raise Conflict("This provider already has that licence.", field="number")
    return accounts.add_license(user, number=number, state=state, kind=kind, expires_on=expires_on,
                                actor=actor, ctx=ctx)


# Provider organisations ---------------------------------------------------------------------------


def list_organizations() -> Select:
    return select(ProviderOrganization).order_by(func.lower(ProviderOrganization.name), ProviderOrganization.id)


def active_organizations() -> list[ProviderOrganization]:
    return list(db.session.scalars(list_organizations().where(ProviderOrganization.is_active.is_(True))))


def get_organization(org_id: int) -> ProviderOrganization:
    org = db.session.get(ProviderOrganization, org_id)
    if org is None:
        raise NotFound("No such organisation.")
    return org


def update_organization(org: ProviderOrganization, *, name: str, contact_email: str | None, phone: str | None,
                        actor: User, ctx: RequestContext | None = None) -> ProviderOrganization:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Enter the organisation's name.", field="name")
    clash = db.session.scalar(select(ProviderOrganization).where(
        func.lower(ProviderOrganization.name) == name.lower(), ProviderOrganization.id != org.id))
    if clash is not None:
        raise Conflict("An organisation with that name already exists.", field="name")
    email = _contact_email(contact_email)
    phone = (phone or "").strip() or None
    changes = {k: v for k, v in (("name", name), ("contact_email", email), ("phone", phone))
               if getattr(org, k) != v}
    if not changes:
        return org
    for key, value in changes.items():
        setattr(org, key, value)
    audit.record("provider_org.updated", actor=actor, object_type="provider_organization", object_id=org.id,
                 details={"fields": sorted(changes)}, ctx=ctx)
    return org


def set_organization_active(org: ProviderOrganization, active: bool, *, actor: User,
                            ctx: RequestContext | None = None) -> None:
    if org.is_active == active:
        return
    org.is_active = active
    audit.record("provider_org.activated" if active else "provider_org.deactivated", actor=actor,
                 object_type="provider_organization", object_id=org.id, ctx=ctx)


def create_organization(*, name: str, contact_email: str | None, phone: str | None, actor: User,
                        ctx: RequestContext | None = None) -> ProviderOrganization:
    email = _contact_email(contact_email)
    org = accounts.create_provider_organization(name, contact_email=email, actor=actor, ctx=ctx)
    org.phone = (phone or "").strip() or None
    return org


def _contact_email(raw: str | None) -> str | None:
    if not (raw or "").strip():
        return None
    try:
        return accounts.validate_email(raw)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field="contact_email") from exc


def licenses_expiring(today: date, *, within_days: int = 60, limit: int = 5) -> Batch:
    """Licences of active providers that expire from ``today`` to ``within_days`` later, soonest first
    (the admin's home: renew them before a provider can no longer record decisions)."""
    return first_of(select(ProviderLicense).join(User, User.id == ProviderLicense.user_id)
                    .where(ProviderLicense.expires_on >= today,
                           ProviderLicense.expires_on <= today + timedelta(days=within_days),
                           User.is_active_account.is_(True))
                    .options(joinedload(ProviderLicense.user))
                    .order_by(ProviderLicense.expires_on, ProviderLicense.id), limit=limit)
