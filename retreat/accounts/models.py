"""Accounts: users, roles, provider organisations and licences, API tokens, site settings."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class Role(StrEnum):
    PARTICIPANT = "participant"
    FACILITATOR = "facilitator"
    PROVIDER = "provider"
    FINANCE = "finance"
    ADMIN = "admin"


STAFF_ROLES = frozenset({Role.FACILITATOR, Role.PROVIDER, Role.FINANCE, Role.ADMIN})
# Roles that see money or clinical data: short idle timeout, TOTP may be required.
SENSITIVE_ROLES = frozenset({Role.PROVIDER, Role.FINANCE, Role.ADMIN})


class ProviderOrganization(TimestampMixin, db.Model):
    __tablename__ = "provider_organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    members: Mapped[list[User]] = relationship(back_populates="provider_organization")


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"
    # Emails are stored lower-cased (the service normalises them); the check makes the unique
    # constraint on email a case-insensitive one whatever writes the row.
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lowercase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Always stored lower-cased and stripped; uniqueness is also enforced on lower(email).
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Indexed: staff are a few among thousands of participants (the slot list's facilitators, staff pickers).
    role: Mapped[str] = enum_column(Role, default=Role.PARTICIPANT, nullable=False, index=True)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    phone: Mapped[str | None] = mapped_column(String(40))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active_account: Mapped[bool] = mapped_column("is_active", Boolean, default=True)
    email_verified_at: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    # Bumped by "log out everywhere" and password changes; part of the session identity.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column()
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # replay protection
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_organizations.id", ondelete="RESTRICT"), index=True
    )

    provider_organization: Mapped[ProviderOrganization | None] = relationship(back_populates="members")
    licenses: Mapped[list[ProviderLicense]] = relationship(
        back_populates="user", order_by="ProviderLicense.expires_on.desc()"
    )

    # Flask-Login -------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.is_active_account)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    # Helpers -----------------------------------------------------------------------------
    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None and bool(self.totp_secret)

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class ProviderLicense(TimestampMixin, db.Model):
    __tablename__ = "provider_licenses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8))  # US state / jurisdiction code, e.g. CO
    kind: Mapped[str] = mapped_column(String(32), default="MD")  # MD, DO, NP, PA ...
    expires_on: Mapped[date] = mapped_column(Date)

    user: Mapped[User] = relationship(back_populates="licenses")

    def is_valid_on(self, day: date) -> bool:
        return day <= self.expires_on


class ApiToken(TimestampMixin, db.Model):
    """Personal API token for staff. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    # None: the full access of the user's role (CLI tokens without --scope, tokens made before
    # scopes existed). A list narrows it to those scopes (retreat.accounts.api_tokens.SCOPES).
    scopes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)

    user: Mapped[User] = relationship()


class SiteSetting(db.Model):
    """Small key/value settings that admins change at run time (e.g. require TOTP for staff)."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
