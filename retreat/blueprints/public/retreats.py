"""Public retreat pages: retreats, open cohorts with seats left, the program guide, the way to apply."""

from __future__ import annotations

from flask import abort, current_app, render_template, send_file

from retreat.blueprints.public import bp
from retreat.cohorts import catalog as cohort_service
from retreat.core.errors import NotFound
from retreat.timeutil import now_utc
from retreat.web.page_cache import anonymous_cache


def upload_dir() -> str:
    return str(current_app.config.get("UPLOAD_DIR") or (current_app.instance_path + "/uploads"))


@bp.get("/retreats")
def retreats():
    now = now_utc()
    open_ = cohort_service.open_cohorts(now=now)
    by_retreat: dict = {}
    for c in open_:
        by_retreat.setdefault(c.retreat, []).append(c)
    return render_template("retreats/index.html", by_retreat=by_retreat, svc=cohort_service)


def _published_retreat(slug: str):
    try:
        return cohort_service.get_retreat_by_slug(slug)
    except NotFound:
        abort(404)


@bp.get("/retreats/<slug>")
def retreat_detail(slug: str):
    retreat = _published_retreat(slug)
    now = now_utc()
    visible = [c for c in retreat.cohorts if c.status in ("open", "closed") and c.ends_at > now]
    return render_template("retreats/retreat.html", retreat=retreat, cohorts=visible, svc=cohort_service)


@bp.get("/retreats/<slug>/guide.pdf")
def retreat_guide(slug: str):
    retreat = _published_retreat(slug)
    path = cohort_service.guide_path(retreat, upload_dir())
    if path is None:
        abort(404)
    return send_file(path, mimetype="application/pdf", as_attachment=True,
                     download_name=retreat.guide_filename or "program-guide.pdf")


@bp.get("/cohorts/<int:cohort_id>")
@anonymous_cache
def cohort_detail(cohort_id: int):
    try:
        cohort = cohort_service.public_cohort(cohort_id)
    except NotFound:
        abort(404)
    return render_template("retreats/cohort.html", cohort=cohort, retreat=cohort.retreat, svc=cohort_service,
                           accepting=cohort.status == "open" and cohort.starts_at > now_utc())


@bp.app_template_filter("local_date")
def local_date(value, tz: str | None = None, fmt: str = "%a %d %b %Y") -> str:
    """A date (or date and time) in a zone, without the zone abbreviation (for day-level dates)."""
    from retreat.timeutil import to_local
    from retreat.web.templating import viewer_tz

    if value is None:
        return ""
    return to_local(value, tz or viewer_tz()).strftime(fmt)
