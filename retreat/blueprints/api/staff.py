"""Staff operations for integrators (bearer tokens of facilitators and admins).

- ``GET /consultations``: a facilitator's own consults, or all for an admin (scope read:consults);
- ``POST /consultations/<id>/cancel`` and ``/reschedule``: the consult's own facilitator
  (scope write:consults), with the booking rules of ``retreat.consults.booking``;
- ``GET /team/cohorts``, ``GET /enrollments?cohort=`` (read:cohorts) and
  ``GET /cohorts/<id>/roster`` (read:roster): cohorts on the caller's team only, never a clinical field.

Lists page with an opaque cursor (``limit`` 1-200; ``next_cursor`` until it is null) and answer
with a weak ``ETag``; sending it back as ``If-None-Match`` gets 304 with no body while the page
is unchanged. Bad input answers 4xx with the field's message and changes nothing.
"""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from retreat.accounts.models import Role
from retreat.blueprints.api import pages
from retreat.blueprints.api.schemas import ErrorSchema
from retreat.cohorts import roster_feed
from retreat.cohorts.models import Cohort, EnrollmentStatus, SeatState
from retreat.cohorts.team import is_on_team
from retreat.consults import staff_feed
from retreat.consults.models import ConsultStatus
from retreat.core import urls
from retreat.core.errors import DomainError
from retreat.extensions import db
from retreat.timeutil import now_utc
from retreat.web.errors import json_error
from retreat.web.etag import ETAG_HEADER, NOT_MODIFIED
from retreat.web.security import api_roles_required, api_scope_required, request_context, require_object

blp = Blueprint("api_staff", __name__, url_prefix="/api/v1",
                description="Staff operations: consultations, cohorts, enrollments and rosters "
                            "(facilitator and admin tokens)")

CONSULT_STATUSES = [s.value for s in ConsultStatus]
BAD_QUERY = "A filter is invalid (field errors under `errors`); nothing was read."
BAD_EXAMPLE = {"error": "Some query parameters are invalid.",
               "errors": {"cursor": ["Not a cursor from this API: pass next_cursor as it was returned."]}}



class ConsultQuerySchema(Schema):
    from_ = fields.Date(data_key="from", metadata={"description": "First UTC day of the start (inclusive).",
                                                   "example": "2026-12-01"})
    to = fields.Date(metadata={"description": "Last UTC day of the start (inclusive).", "example": "2026-12-31"})
    status = fields.String(validate=validate.OneOf(CONSULT_STATUSES),
                           metadata={"enum": CONSULT_STATUSES, "example": "booked"})
    limit = pages.limit_field()
    cursor = pages.cursor_field()


class ConsultItemSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": CONSULT_STATUSES})
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    facilitator_id = fields.Integer(required=True)
    facilitator_name = fields.String(allow_none=True)
    guest_name = fields.String(required=True)
    guest_email = fields.String(required=True)
    guest_time_zone = fields.String(required=True)
    booked_via = fields.String(required=True)
    cancelled_by = fields.String(allow_none=True, metadata={"enum": ["guest", "facilitator", None]})
    sequence = fields.Integer(required=True, metadata={"description": "iCalendar SEQUENCE: +1 on each change."})


class ConsultPageSchema(Schema):
    items = fields.List(fields.Nested(ConsultItemSchema), required=True)
    next_cursor = pages.next_cursor_field()


class RescheduleSchema(Schema):
    start = fields.AwareDateTime(required=True, metadata={"description": "The new start, ISO 8601 with an offset.",
                                                           "example": "2026-12-15T17:00:00Z"})


class PageQuerySchema(Schema):
    limit = pages.limit_field()
    cursor = pages.cursor_field()


class EnrollmentQuerySchema(PageQuerySchema):
    cohort = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1),
                            metadata={"description": "The cohort's id (one on your team).", "example": 3})


class TeamCohortSchema(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    retreat = fields.String(required=True)
    status = fields.String(required=True)
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    timezone = fields.String(required=True)
    capacity = fields.Integer(required=True)


class TeamCohortPageSchema(Schema):
    items = fields.List(fields.Nested(TeamCohortSchema), required=True)
    next_cursor = pages.next_cursor_field()


ENROLLMENT_STATUSES = [s.value for s in EnrollmentStatus]
SEAT_STATES = [s.value for s in SeatState]


class StaffEnrollmentSchema(Schema):
    id = fields.Integer(required=True)
    cohort_id = fields.Integer(required=True)
    participant_id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": ENROLLMENT_STATUSES})
    seat = fields.String(required=True, metadata={"enum": SEAT_STATES})
    applied_at = fields.DateTime(required=True)
    seat_confirmed_at = fields.DateTime(allow_none=True)
    hold_expires_at = fields.DateTime(allow_none=True)
    waitlist_position = fields.Integer(allow_none=True)
    offer_expires_at = fields.DateTime(allow_none=True)


class StaffEnrollmentPageSchema(Schema):
    items = fields.List(fields.Nested(StaffEnrollmentSchema), required=True)
    next_cursor = pages.next_cursor_field()


class RosterItemSchema(Schema):
    """A roster row: who and their seat. Never a clinical field (intake, clearance, screening, dosing)."""

    enrollment_id = fields.Integer(required=True)
    participant_id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ENROLLMENT_STATUSES})
    seat = fields.String(required=True, metadata={"enum": SEAT_STATES})
    applied_at = fields.DateTime(required=True)


class RosterPageSchema(Schema):
    items = fields.List(fields.Nested(RosterItemSchema), required=True)
    next_cursor = pages.next_cursor_field()


CONSULT_EXAMPLE = {"id": 12, "status": "booked", "start": "2026-12-15T17:00:00+00:00",
                   "end": "2026-12-15T17:30:00+00:00", "facilitator_id": 3, "facilitator_name": "Fran Rivera",
                   "guest_name": "Sam Lee", "guest_email": "sam@example.com", "guest_time_zone": "America/Chicago",
                   "booked_via": "web", "cancelled_by": None, "sequence": 0}
CONSULT_PAGE_EXAMPLE = {"items": [CONSULT_EXAMPLE], "next_cursor": "MjAyNi0xMi0xNVQxNzowMDowMCswMDowMHwxMg"}
COHORTS_EXAMPLE = {"items": [{"id": 3, "title": "Spring cohort", "retreat": "Colorado week", "status": "open",
                              "starts_at": "2027-04-12T16:00:00+00:00", "ends_at": "2027-04-18T18:00:00+00:00",
                              "timezone": "America/Denver", "capacity": 12}], "next_cursor": None}
ENROLLMENTS_EXAMPLE = {"items": [{"id": 7, "cohort_id": 3, "participant_id": 12, "status": "deposit_paid",
                                  "seat": "confirmed", "applied_at": "2026-11-02T15:04:00+00:00",
                                  "seat_confirmed_at": "2026-11-20T18:00:00+00:00", "hold_expires_at": None,
                                  "waitlist_position": None, "offer_expires_at": None}], "next_cursor": None}
ROSTER_EXAMPLE = {"items": [{"enrollment_id": 7, "participant_id": 12, "name": "Jo Park", "email": "jo@example.com",
                             "status": "deposit_paid", "seat": "confirmed",
                             "applied_at": "2026-11-02T15:04:00+00:00"}], "next_cursor": None}


def _refused(exc: DomainError):
    return json_error(400, exc.message, exc.errors or None)



def _team_cohort(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id)
    require_object(cohort is not None and is_on_team(g.api_user, cohort.id))
    return cohort


@blp.route("/consultations", methods=["GET"])
@api_roles_required(Role.FACILITATOR, Role.ADMIN)
@api_scope_required("read:consults")
@blp.arguments(ConsultQuerySchema, location="query", error_status_code=400)
@blp.response(200, ConsultPageSchema, example=CONSULT_PAGE_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
def consultations(args):
    """Consultations by start time, a page at a time

    A facilitator's own consults; every consult for an admin. Never the guest's reason or
    pre-screen answers."""
    try:
        page = staff_feed.consultations(g.api_user, since=args.get("from_"), until=args.get("to"),
                                        status=args.get("status"), limit=args["limit"], cursor=args.get("cursor"))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(ConsultPageSchema(), page)


def _own_consult(consult_id: int):
    consult = staff_feed.locked_consult(consult_id)
    require_object(consult is not None and consult.facilitator_id == g.api_user.id)
    return consult


@blp.route("/consultations/<int:consult_id>/cancel", methods=["POST"])
@api_roles_required(Role.FACILITATOR)
@api_scope_required("write:consults")
@blp.response(200, ConsultItemSchema, example=dict(CONSULT_EXAMPLE, status="cancelled", cancelled_by="facilitator",
                                                   sequence=1))
@blp.alt_response(404, schema=ErrorSchema, description="No such consultation of yours")
@blp.alt_response(409, schema=ErrorSchema, description="It has already taken place",
                  example={"error": "This consultation has already taken place."})
def cancel_consultation(consult_id: int):
    """Cancel one of your consultations

    The guest is emailed; repeating it changes nothing and sends nothing."""
    consult = _own_consult(consult_id)
    staff_feed.staff_cancel(consult, actor=g.api_user, base_url=urls.base_url(), now=now_utc(),
                            ctx=request_context())
    return staff_feed.consult_item(consult)


@blp.route("/consultations/<int:consult_id>/reschedule", methods=["POST"])
@api_roles_required(Role.FACILITATOR)
@api_scope_required("write:consults")
@blp.arguments(RescheduleSchema, example={"start": "2026-12-16T18:00:00Z"})
@blp.response(200, ConsultItemSchema, example=dict(CONSULT_EXAMPLE, start="2026-12-16T18:00:00+00:00",
                                                   end="2026-12-16T18:30:00+00:00", sequence=1))
@blp.alt_response(404, schema=ErrorSchema, description="No such consultation of yours")
@blp.alt_response(409, schema=ErrorSchema, description="Cancelled, too close to change, or the time is taken",
                  example={"error": "Sorry, that time was just taken."})
@blp.alt_response(422, schema=ErrorSchema, description="The new start is past, unchanged, or too soon",
                  example={"error": "That time has already passed. Please choose another time.",
                           "errors": {"start": ["That time has already passed. Please choose another time."]}})
def reschedule_consultation(data, consult_id: int):
    """Move one of your consultations to a free time

    The booking rules apply (free in your schedule, beyond the change cutoff); the guest gets the
    new time and a new manage link."""
    consult = _own_consult(consult_id)
    staff_feed.staff_reschedule(consult, data["start"], actor=g.api_user, base_url=urls.base_url(), now=now_utc(),
                                ctx=request_context())
    return staff_feed.consult_item(consult)


@blp.route("/team/cohorts", methods=["GET"])
@api_roles_required(Role.FACILITATOR, Role.ADMIN)
@api_scope_required("read:cohorts")
@blp.arguments(PageQuerySchema, location="query", error_status_code=400)
@blp.response(200, TeamCohortPageSchema, example=COHORTS_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
def team_cohorts(args):
    """The cohorts on your team (drafts included), by id"""
    try:
        page = roster_feed.team_cohorts(g.api_user, limit=args["limit"], cursor=args.get("cursor"))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(TeamCohortPageSchema(), page)


@blp.route("/enrollments", methods=["GET"])
@api_roles_required(Role.FACILITATOR, Role.ADMIN)
@api_scope_required("read:cohorts")
@blp.arguments(EnrollmentQuerySchema, location="query", error_status_code=400)
@blp.response(200, StaffEnrollmentPageSchema, example=ENROLLMENTS_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
@blp.alt_response(404, schema=ErrorSchema, description="No such cohort on your team")
def enrollments(args):
    """A cohort's enrollments (status pipeline, seat, waitlist), by id"""
    cohort = _team_cohort(args["cohort"])
    try:
        page = roster_feed.enrollments(cohort.id, limit=args["limit"], cursor=args.get("cursor"))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(StaffEnrollmentPageSchema(), page)


@blp.route("/cohorts/<int:cohort_id>/roster", methods=["GET"])
@api_roles_required(Role.FACILITATOR, Role.ADMIN)
@api_scope_required("read:roster")
@blp.arguments(PageQuerySchema, location="query", error_status_code=400)
@blp.response(200, RosterPageSchema, example=ROSTER_EXAMPLE, headers=ETAG_HEADER)
@blp.alt_response(304, description=NOT_MODIFIED)
@blp.alt_response(400, schema=ErrorSchema, description=BAD_QUERY, example=BAD_EXAMPLE)
@blp.alt_response(404, schema=ErrorSchema, description="No such cohort on your team")
def roster(args, cohort_id: int):
    """A cohort's roster: names, emails, status and seat (never a clinical field)"""
    cohort = _team_cohort(cohort_id)
    try:
        page = roster_feed.roster(cohort.id, limit=args["limit"], cursor=args.get("cursor"))
    except DomainError as exc:
        return _refused(exc)
    return pages.listed(RosterPageSchema(), page)
