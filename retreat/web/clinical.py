"""View-layer helpers shared by every page and API route that shows clinical data."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import abort
from flask_wtf import FlaskForm

from retreat.clinical import access as clinical_access
from retreat.clinical.access import AccessDenied
from retreat.clinical.models import ClearanceRequest
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.security import acting_user, request_context

T = TypeVar("T")


def read_or_404(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call a ``clinical_access`` read; a refusal keeps its audit event (committed) and answers 404."""
    try:
        return fn(*args, **kwargs)
    except AccessDenied:
        db.session.commit()  # the clinical.denied audit event
        abort(404)


def org_request_or_404(request_id: int) -> ClearanceRequest:
    """A clearance request referred to the signed-in provider's organisation; otherwise a logged 404."""
    user = acting_user()
    req = db.session.get(ClearanceRequest, request_id)
    if req is None or req.organization_id != user.provider_organization_id:
        clinical_access.refuse(user, req.enrollment_id if req else None, "clearance_request",
                               ctx=request_context(), now=now_utc())
        db.session.commit()  # the refusal stays in the audit log
        abort(404)
    return req


def apply_errors(form: FlaskForm, exc: DomainError) -> None:
    """Put a service's field errors next to the form's fields (the rest at the top of the form)."""
    for name, messages in (exc.errors or {"": [exc.message]}).items():
        if name in form:
            form[name].errors = list(form[name].errors or []) + list(messages)
        else:
            form.form_errors.append(" ".join(messages))
