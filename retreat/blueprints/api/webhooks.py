"""Outbound webhook endpoints, for admin tokens (the admin console has the same at /admin/webhooks)."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from retreat.accounts.models import Role
from retreat.blueprints.api.schemas import ErrorSchema
from retreat.core.errors import NotFound
from retreat.messaging import webhooks
from retreat.web.security import api_roles_required, api_scope_required, request_context, require_object

blp = Blueprint("api_webhooks", __name__, url_prefix="/api/v1",
                description="Outbound webhooks (admins only). Deliveries are signed: see the README.")
EVENT_NAMES = [k for k in webhooks.EVENT_TYPES if k != "webhook.test"]


class WebhookEndpointCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=webhooks.URL_MAX),
                        metadata={"description": "An http(s) URL on a public address.",
                                  "example": "https://hooks.example.com/retreat"})
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_NAMES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_NAMES) * 2),
                         metadata={"example": ["consultation.booked", "payment.succeeded"]})
    description = fields.String(load_default="", validate=validate.Length(max=webhooks.DESCRIPTION_MAX),
                                metadata={"example": "Zapier: new consults to the CRM"})


class WebhookEndpointSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    description = fields.String()
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    consecutive_failures = fields.Integer()
    last_success_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class WebhookEndpointCreatedSchema(WebhookEndpointSchema):
    secret = fields.String(metadata={"description": "The signing secret, shown only in this answer.",
                                     "example": "whsec_9s8d7f6g5h4j3k2l1"})


class WebhookEndpointListSchema(Schema):
    items = fields.List(fields.Nested(WebhookEndpointSchema))


class WebhookTestSchema(Schema):
    delivery_id = fields.Integer()
    event_id = fields.String(metadata={"example": "evt_3f2a1b0c9d8e7f6a5b4c3d2e"})


def _endpoint(endpoint_id: int):
    try:
        return webhooks.get_endpoint(endpoint_id)
    except NotFound:
        require_object(False)


@blp.route("/webhook-endpoints", methods=["POST"])
@api_roles_required(Role.ADMIN)
@api_scope_required("admin:webhooks")
@blp.arguments(WebhookEndpointCreateSchema)
@blp.response(201, WebhookEndpointCreatedSchema)
@blp.alt_response(422, schema=ErrorSchema, description="A private or unreachable URL, or unknown events")
def create_endpoint(data):
    """Register an endpoint; the answer holds its signing secret (shown once)"""
    ep, secret = webhooks.create_endpoint(url=data["url"], events=data["events"], description=data["description"],
                                          actor=g.api_user, ctx=request_context())
    return {**{k: getattr(ep, k) for k in WebhookEndpointSchema().fields}, "secret": secret}


@blp.route("/webhook-endpoints", methods=["GET"])
@api_roles_required(Role.ADMIN)
@api_scope_required("admin:webhooks")
@blp.response(200, WebhookEndpointListSchema)
def list_endpoints():
    """The registered endpoints (never their secrets)"""
    return {"items": webhooks.live_endpoints()}


@blp.route("/webhook-endpoints/<int:endpoint_id>", methods=["DELETE"])
@api_roles_required(Role.ADMIN)
@api_scope_required("admin:webhooks")
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such endpoint")
def delete_endpoint(endpoint_id: int):
    """Stop sending to an endpoint; its pending deliveries are dropped"""
    webhooks.delete_endpoint(_endpoint(endpoint_id).id, actor=g.api_user, ctx=request_context())
    return None


@blp.route("/webhook-endpoints/<int:endpoint_id>/test", methods=["POST"])
@api_roles_required(Role.ADMIN)
@api_scope_required("admin:webhooks")
@blp.response(202, WebhookTestSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such endpoint")
def test_endpoint(endpoint_id: int):
    """Send a `webhook.test` event to this endpoint"""
    d = webhooks.send_test(_endpoint(endpoint_id).id, actor=g.api_user, ctx=request_context())
    return {"delivery_id": d.id, "event_id": d.event.public_id}
