"""Cohorts API: open cohorts (public) and, for a signed-in participant, applying and reading an enrollment.

Authentication for the participant routes: the browser session cookie of a participant, with
CSRF required on POST (send the token in an ``X-CSRFToken`` header; ``GET /api/v1/csrf-token``
returns one for the current session). API bearer tokens are for staff only, so a token gets 403
on the participant routes.
"""

from __future__ import annotations

from flask import abort
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint
from flask_wtf.csrf import generate_csrf
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from retreat.accounts.models import Role
from retreat.blueprints.api.schemas import CsrfTokenSchema
from retreat.cohorts import catalog as svc
from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import Enrollment
from retreat.core.errors import DomainError, NotFound
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.errors import json_error
from retreat.web.page_cache import anonymous_cache
from retreat.web.security import api_session_doc, api_session_roles_required

blp = Blueprint("api_cohorts", __name__, url_prefix="/api/v1", description="Retreat cohorts and enrollments")


class MoneySchema(Schema):
    amount_minor = fields.Integer(required=True)
    currency = fields.String(required=True)


class CohortSchema(Schema):
    id = fields.Integer()
    retreat = fields.String()
    retreat_slug = fields.String()
    title = fields.String()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    timezone = fields.String()
    capacity = fields.Integer()
    seats_available = fields.Integer()
    waitlist_open = fields.Boolean()
    price = fields.Nested(MoneySchema)
    deposit = fields.Nested(MoneySchema)
    balance_due_on = fields.Date(allow_none=True)
    deposit_timing = fields.String()
    status = fields.String()


class CohortListSchema(Schema):
    cohorts = fields.List(fields.Nested(CohortSchema))


class ApplicationSchema(Schema):
    motivation = fields.String(load_default="", validate=validate.Length(max=enrollment.MOTIVATION_MAX))
    partner_email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))


class EnrollmentSchema(Schema):
    id = fields.Integer()
    cohort_id = fields.Integer()
    status = fields.String()
    status_label = fields.String()
    seat = fields.String()
    hold_expires_at = fields.DateTime(allow_none=True)
    waitlisted = fields.Boolean()
    waitlist_place = fields.Integer(allow_none=True)
    offer_expires_at = fields.DateTime(allow_none=True)
    applied_at = fields.DateTime()
    checklist_done = fields.Integer()
    checklist_total = fields.Integer()
    steps = fields.List(fields.Dict())


def cohort_dict(c) -> dict:
    return {
        "id": c.id, "retreat": c.retreat.title, "retreat_slug": c.retreat.slug, "title": c.title,
        "starts_at": c.starts_at, "ends_at": c.ends_at, "timezone": c.timezone, "capacity": c.capacity,
        "seats_available": c.seats_available, "waitlist_open": svc.waitlist_open(c),
        "price": {"amount_minor": c.price_minor, "currency": c.currency},
        "deposit": {"amount_minor": c.deposit_minor, "currency": c.currency},
        "balance_due_on": c.balance_due_on, "deposit_timing": c.deposit_timing, "status": c.status,
    }


def enrollment_dict(e: Enrollment) -> dict:
    from retreat.cohorts import preparation

    done, total = preparation.progress(e)
    return {
        "id": e.id, "cohort_id": e.cohort_id, "status": e.status, "status_label": enrollment.label(e.status),
        "seat": e.seat, "hold_expires_at": e.hold_expires_at, "waitlisted": e.is_waitlisted,
        "waitlist_place": seats.place(e) or None, "offer_expires_at": e.offer_expires_at,
        "applied_at": e.applied_at, "checklist_done": done, "checklist_total": total,
        "steps": enrollment.tracker_steps(e),
    }


def _participant():
    return current_user._get_current_object()


@blp.route("/cohorts")
class Cohorts(MethodView):
    @anonymous_cache  # outermost: caches the serialised answer
    @blp.doc(security=[])
    @blp.response(200, CohortListSchema)
    def get(self):
        """Open cohorts, soonest first (public)."""
        return {"cohorts": [cohort_dict(c) for c in svc.open_cohorts(now=now_utc())]}


@blp.route("/cohorts/<int:cohort_id>")
class CohortDetail(MethodView):
    @anonymous_cache
    @blp.doc(security=[])
    @blp.response(200, CohortSchema)
    def get(self, cohort_id: int):
        """One cohort (public; drafts are not found)."""
        try:
            return cohort_dict(svc.public_cohort(cohort_id))
        except NotFound:
            abort(404)


@blp.route("/cohorts/<int:cohort_id>/applications")
class Applications(MethodView):
    decorators = [api_session_roles_required(Role.PARTICIPANT)]

    @api_session_doc
    @blp.arguments(ApplicationSchema)
    @blp.response(201, EnrollmentSchema)
    @blp.alt_response(409, description="Already applied, or the cohort is not accepting applications")
    def post(self, data, cohort_id: int):
        """Apply to a cohort as the signed-in participant (session cookie + X-CSRFToken)."""
        user = _participant()
        try:
            cohort = svc.public_cohort(cohort_id)
        except NotFound:
            abort(404)
        try:
            enr = enrollment.apply(cohort, user, now=now_utc(), motivation=data.get("motivation") or "",
                                   partner_email=data.get("partner_email"))
        except DomainError as exc:
            return json_error(exc.status, exc.message, exc.errors or None)
        return enrollment_dict(enr)


@blp.route("/enrollments/<int:enrollment_id>")
class EnrollmentDetail(MethodView):
    decorators = [api_session_roles_required(Role.PARTICIPANT)]

    @api_session_doc
    @blp.response(200, EnrollmentSchema)
    def get(self, enrollment_id: int):
        """The signed-in participant's own enrollment (others' ids are not found)."""
        user = _participant()
        enr = db.session.scalar(select(Enrollment).where(Enrollment.id == enrollment_id,
                                                         Enrollment.participant_id == user.id))
        if enr is None:
            abort(404)
        return enrollment_dict(enr)


@blp.route("/csrf-token")
class CsrfToken(MethodView):
    @blp.doc(security=[])
    @blp.response(200, CsrfTokenSchema)
    def get(self):
        """A CSRF token for the current browser session (send it as X-CSRFToken on POST)."""
        return {"csrf_token": generate_csrf()}
