"""Admin: the audit log, filtered in the admin's own time zone, and its CSV export (audited)."""

from __future__ import annotations

from flask import Response, render_template, request, stream_with_context

from retreat.audit import log as audit_log
from retreat.audit.log import AuditFilters
from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import form_failed, page_arg, query_without_page
from retreat.blueprints.admin.forms import AuditFilterForm
from retreat.core.errors import DomainError
from retreat.core.pagination import paginate
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context

PER_PAGE = 50


def _filters(form: AuditFilterForm) -> AuditFilters | None:
    """The filters of the query string, or None (with errors on the form) when they are invalid."""
    if not form.validate():
        return None
    try:
        since, until = audit_log.day_range(form.date_from.data, form.date_to.data, acting_user().tz)
    except DomainError as exc:
        form_failed(form, exc)
        return None
    return AuditFilters(action=form.action.data, actor=form.actor.data, object_type=form.object_type.data,
                        object_id=form.object_id.data, since=since, until=until)


@bp.get("/audit", endpoint="audit_log")
@no_store
def audit_log_page():
    form = AuditFilterForm(formdata=request.args)
    filters = _filters(form)
    page = paginate(filters.statement(), page=page_arg(), per_page=PER_PAGE) if filters else None
    return render_template("admin/audit_log.html", form=form, page=page, query=query_without_page()), (
        200 if filters else 422)


@bp.get("/audit/export.csv")
@no_store
def audit_export():
    form = AuditFilterForm(formdata=request.args)
    filters = _filters(form)
    if filters is None:
        return render_template("admin/audit_log.html", form=form, page=None, query=query_without_page()), 422
    audit_log.record_export(filters, actor=acting_user(), ctx=request_context())
    filename = f"audit-{now_utc():%Y%m%d-%H%M%S}.csv"
    return Response(stream_with_context(audit_log.csv_lines(filters)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
