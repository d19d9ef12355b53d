"""Admin reads: users and the audit log."""

from __future__ import annotations

from flask_smorest import Blueprint

from retreat.accounts import admin as admin_users
from retreat.accounts.models import Role
from retreat.audit.log import AuditFilters
from retreat.blueprints.api.schemas import AuditPageSchema, AuditQuerySchema, UserPageSchema, UserQuerySchema
from retreat.core.pagination import Page, paginate
from retreat.web.security import api_roles_required

blp = Blueprint("api_admin", __name__, url_prefix="/api/v1", description="Administration (admins only)")


def _page_body(page: Page) -> dict:
    return {"items": page.items,
            "meta": {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages}}


@blp.route("/users", methods=["GET"])
@api_roles_required(Role.ADMIN)
@blp.arguments(UserQuerySchema, location="query")
@blp.response(200, UserPageSchema)
def users(args):
    """Users, filtered by name/email, role and active flag"""
    stmt = admin_users.search_users(q=args.get("q"), role=args.get("role"), active=args.get("active"))
    return _page_body(paginate(stmt, page=args["page"], per_page=args["per_page"]))


@blp.route("/audit-events", methods=["GET"])
@api_roles_required(Role.ADMIN)
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def audit_events(args):
    """Audit events, newest first"""
    filters = AuditFilters(action=args.get("action"), actor=args.get("actor"), object_type=args.get("object_type"),
                           object_id=args.get("object_id"), since=args.get("since"), until=args.get("until"))
    return _page_body(paginate(filters.statement(), page=args["page"], per_page=args["per_page"]))
