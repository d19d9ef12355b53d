"""The caller's own account and API tokens."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from sqlalchemy import select

from retreat.accounts import api_tokens, profiles
from retreat.accounts.models import STAFF_ROLES, ApiToken
from retreat.blueprints.api.schemas import MeSchema, MeUpdateSchema, TokenListSchema
from retreat.extensions import db
from retreat.web.security import api_roles_required, request_context, require_object

blp = Blueprint("api_account", __name__, url_prefix="/api/v1", description="Your account and API tokens")
STAFF = tuple(sorted(STAFF_ROLES))


@blp.route("/me", methods=["GET"])
@api_roles_required(*STAFF)
@blp.response(200, MeSchema)
def me():
    """Who the token belongs to"""
    return g.api_user


@blp.route("/me", methods=["PATCH"])
@api_roles_required(*STAFF)
@blp.arguments(MeUpdateSchema)
@blp.response(200, MeSchema)
def update_me(data):
    """Change your name or time zone"""
    profiles.update_profile(g.api_user, name=data.get("name"), tz=data.get("tz"), ctx=request_context())
    return g.api_user


@blp.route("/tokens", methods=["GET"])
@api_roles_required(*STAFF)
@blp.response(200, TokenListSchema)
def tokens():
    """Your API tokens (never the secrets)"""
    rows = db.session.scalars(select(ApiToken).where(ApiToken.user_id == g.api_user.id)
                              .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
    return {"items": list(rows)}


@blp.route("/tokens/<int:token_id>", methods=["DELETE"])
@api_roles_required(*STAFF)
@blp.response(204)
def revoke_token(token_id: int):
    """Revoke one of your tokens (repeating it is harmless)"""
    token = db.session.get(ApiToken, token_id)
    require_object(token is not None and token.user_id == g.api_user.id)
    api_tokens.revoke_token(token, actor=g.api_user, ctx=request_context())
    return None
