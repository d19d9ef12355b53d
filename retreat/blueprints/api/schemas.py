"""marshmallow schemas of the JSON API (they also document it)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate, validates

from retreat.accounts.models import Role
from retreat.core.pagination import MAX_PER_PAGE
from retreat.timeutil import is_valid_zone

ROLE_VALUES = [r.value for r in Role]


class ErrorSchema(Schema):
    """The one error shape of the API."""

    error = fields.String(required=True, metadata={"description": "What went wrong, for people."})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "Field name -> messages (validation errors only)."})


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class PageMetaSchema(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class MeSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String()
    role = fields.String(dump_only=True, metadata={"enum": ROLE_VALUES})
    tz = fields.String(metadata={"description": "IANA time zone, e.g. America/Denver."})


class MeUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    tz = fields.String(metadata={"description": "IANA time zone, e.g. America/Denver."})

    @validates("tz")
    def _tz(self, value, **_kw):
        if not is_valid_zone(value):
            from marshmallow import ValidationError

            raise ValidationError("Unknown time zone.")


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "First characters of the token, to recognise it."})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String(metadata={"enum": ROLE_VALUES})
    tz = fields.String()
    is_active = fields.Boolean()
    email_verified = fields.Boolean()
    totp_enabled = fields.Boolean()
    provider_organization_id = fields.Integer(allow_none=True)
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class UserQuerySchema(PageArgsSchema):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Part of the name or email."})
    role = fields.String(validate=validate.OneOf(ROLE_VALUES))
    active = fields.Boolean()


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))
    meta = fields.Nested(PageMetaSchema)


class AuditEventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.Integer(allow_none=True)
    actor_email = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    action = fields.String()
    object_type = fields.String(allow_none=True)
    object_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class AuditQuerySchema(PageArgsSchema):
    action = fields.String(validate=validate.Length(max=64), metadata={"description": "Action prefix, e.g. `user.`"})
    actor = fields.String(validate=validate.Length(max=254), metadata={"description": "Part of the actor's email."})
    object_type = fields.String(validate=validate.Length(max=64))
    object_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(metadata={"description": "Inclusive; ISO 8601 with offset."})
    until = fields.AwareDateTime(metadata={"description": "Exclusive; ISO 8601 with offset."})


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))
    meta = fields.Nested(PageMetaSchema)
