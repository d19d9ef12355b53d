"""View-layer helpers shared by every page and API route that shows clinical data."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import abort

from retreat.clinical import access as clinical_access
from retreat.clinical.access import AccessDenied
from retreat.clinical.models import ClearanceRequest
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.security import acting_user, request_context

T = TypeVar("T")


def read_or_404(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call a ``clinical_access`` read; a refusal keeps its audit event (committed) and answers 404."""
    try:
        return fn(*args, **kwargs)
    except AccessDenied:
        transaction.keep("the clinical.denied audit event of a refused read")
        abort(404)


def org_request_or_404(request_id: int) -> ClearanceRequest:
    """A clearance request referred to the signed-in provider's organisation; otherwise a logged 404."""
    user = acting_user()
    req = db.session.get(ClearanceRequest, request_id)
    if req is None or req.organization_id != user.provider_organization_id:
        clinical_access.refuse(user, req.enrollment_id if req else None, "clearance_request",
                               ctx=request_context(), now=now_utc())
        transaction.keep("the refusal stays in the audit log")
        abort(404)
    return req
