"""marshmallow schemas of the JSON API (they also document it)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from retreat.accounts.models import Role
from retreat.core.pagination import MAX_PER_PAGE
from retreat.timeutil import all_zones, is_valid_zone

ROLE_VALUES = [r.value for r in Role]
# The IANA names the server accepts (timeutil.is_valid_zone), documented as the enum they are.
ZONE_NAMES = sorted(z for z in all_zones() if is_valid_zone(z))
ZONE_ERROR = "Unknown time zone: use an IANA name such as America/Denver."


def _zone(value: str) -> None:
    if not is_valid_zone(value):
        raise ValidationError(ZONE_ERROR)


def time_zone(description: str = "IANA time zone name, e.g. America/Denver.", **kwargs) -> fields.String:
    """A time-zone input: one of the server's IANA names (``ZONE_NAMES``), case-sensitive."""
    return fields.String(validate=_zone, metadata={"description": description, "enum": ZONE_NAMES,
                                                   "example": "America/Denver"}, **kwargs)


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
    """At least one of ``name`` and ``tz``."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    tz = time_zone()

    @validates_schema
    def _something(self, data, **_kw):
        if not data:
            message = "Send a name or a tz (or both) to change."
            raise ValidationError({"name": [message], "tz": [message]})


class CsrfTokenSchema(Schema):
    csrf_token = fields.String(required=True, metadata={"description": "Send it as X-CSRFToken on POST."})


def _instant(**kwargs) -> fields.String:
    """An ISO 8601 instant with its offset, as the clearance views write it (``isoformat()``)."""
    return fields.String(metadata={"format": "date-time"}, **kwargs)


class ClearanceSummarySchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    renewal = fields.Boolean()
    referred_at = _instant()
    due_at = _instant()
    cohort = fields.String()
    cohort_starts_at = _instant()
    participant = fields.String()
    screening_level = fields.String(allow_none=True)
    safety_concern = fields.Boolean(allow_none=True)
    valid_until = _instant(allow_none=True)
    decision = fields.String(allow_none=True)
    version = fields.Integer()


class ClearanceListSchema(Schema):
    items = fields.List(fields.Nested(ClearanceSummarySchema), required=True)


class ClearanceMessageSchema(Schema):
    at = _instant()
    from_ = fields.String(data_key="from", metadata={"description": "The author's role."})
    text = fields.String()


class ClearanceDetailSchema(ClearanceSummarySchema):
    answers = fields.Dict(allow_none=True, metadata={"description": "The intake answers (audited read)."})
    screening = fields.Dict(allow_none=True, metadata={"description": "Flags and scores."})
    conditions = fields.String(allow_none=True)
    conditions_shareable = fields.Boolean(allow_none=True)
    rationale = fields.String(allow_none=True)
    note_to_participant = fields.String(allow_none=True)
    messages = fields.List(fields.Nested(ClearanceMessageSchema))


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "First characters of the token, to recognise it."})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    scopes = fields.List(fields.String(), allow_none=True,
                         metadata={"description": "What the token may do; null: everything the role allows.",
                                   "example": ["read:consults", "write:consults"]})


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
