"""Anonymous consult booking API, for embedding booking in the practice's website.

No cookies and no CSRF: the routes read nothing from a session. Each client address is rate
limited (429 with the house error body when exceeded).
"""

from __future__ import annotations

import gzip
import json

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from retreat.blueprints.api.schemas import time_zone
from retreat.consults import booking as bookings
from retreat.consults import prescreen
from retreat.consults import settings as consult_limits
from retreat.consults import slots as free_times
from retreat.core import urls
from retreat.extensions import csrf, limiter
from retreat.timeutil import now_utc, zone
from retreat.web import rate_keys
from retreat.web.security import request_context

blp = Blueprint("api_consultations", __name__, url_prefix="/api/v1",
                description="Free consultation booking. Anonymous: no token, no cookies.")
csrf.exempt(blp)


def _slots_limit() -> str:
    return current_app.config.get("CONSULT_API_SLOTS_RATE_LIMIT", "120 per minute")


def _book_limit() -> str:
    return current_app.config.get("CONSULT_API_BOOK_RATE_LIMIT", "10 per minute")


_client_key = rate_keys.client("consult-api")


class ConsultSlotsQuerySchema(Schema):
    start = fields.Date(required=True, metadata={"description": "First day (YYYY-MM-DD), in `tz`."})
    end = fields.Date(required=True, metadata={"description": f"Last day (YYYY-MM-DD), inclusive: `start` <= `end` "
                                                              f"<= `start` + {free_times.MAX_RANGE_DAYS - 1} days (at most "
                                                              f"{free_times.MAX_RANGE_DAYS} days); otherwise 422."})
    tz = time_zone("The visitor's IANA time zone name.", required=True)
    facilitator_id = fields.Integer(metadata={"description": "Only this facilitator's times (optional)."})

    @validates_schema
    def _range(self, data, **kwargs):
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise ValidationError("The end date must not be before the start date.", field_name="end")
            if (end - start).days + 1 > free_times.MAX_RANGE_DAYS:
                raise ValidationError(f"Ask for at most {free_times.MAX_RANGE_DAYS} days at a time.", field_name="end")


class ConsultSlotSchema(Schema):
    start = fields.String(metadata={"description": "ISO 8601 with the visitor's offset",
                                    "example": "2026-03-10T09:00:00-06:00"})
    end = fields.String(metadata={"example": "2026-03-10T09:30:00-06:00"})
    facilitator_id = fields.Integer()


class ConsultSlotsSchema(Schema):
    slots = fields.List(fields.Nested(ConsultSlotSchema))


class ConsultBookingRequestSchema(Schema):
    start = fields.AwareDateTime(required=True, metadata={"description": "A start time from the slots list, "
                                                                       "ISO 8601 with an offset."})
    facilitator_id = fields.Integer(allow_none=True, metadata={"description": "Omit for whoever is free."})
    name = fields.String(required=True, validate=validate.Length(max=consult_limits.MAX_LEN["name"]))
    email = fields.String(required=True, validate=validate.Length(max=consult_limits.MAX_LEN["email"]))
    timezone = time_zone("The guest's IANA time zone name.", required=True)
    phone = fields.String(allow_none=True, validate=validate.Length(max=consult_limits.MAX_LEN["phone"]))
    reason = fields.String(allow_none=True, validate=validate.Length(max=consult_limits.MAX_LEN["reason"]),
                           metadata={"description": "What brings them (optional)."})
    heard_from = fields.String(allow_none=True, validate=validate.Length(max=consult_limits.MAX_LEN["heard_from"]))
    answers = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict,
        metadata={"description": "Pre-screen answers: yes | no | unsure for the questions "
                                 + ", ".join(prescreen.PRESCREEN_KEYS) + ". Never a reason to refuse a booking."})


class ConsultBookingSchema(Schema):
    id = fields.Integer()
    start = fields.String()
    end = fields.String()
    facilitator_id = fields.Integer()
    manage_url = fields.String(metadata={"description": "Signed link to reschedule or cancel (also emailed)."})


class ConsultErrorSchema(Schema):
    error = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ConsultConflictSchema(ConsultErrorSchema):
    reason = fields.String(metadata={"description": "taken | too_soon | unavailable"})
    next_slots = fields.List(fields.Nested(ConsultSlotSchema))


GZIP_MIN_BYTES = 1024


def _slot_json(slot, z) -> dict:
    return {"start": slot.start.astimezone(z).isoformat(), "end": slot.end.astimezone(z).isoformat(),
            "facilitator_id": slot.facilitator_id}


@blp.route("/consultations/slots")
@limiter.limit(_slots_limit, key_func=_client_key)
@blp.doc(security=[], summary="Free consult times")
@blp.arguments(ConsultSlotsQuerySchema, location="query")
@blp.response(200, ConsultSlotsSchema)
@blp.alt_response(422, schema=ConsultErrorSchema, description="Bad date, range over 62 days, or unknown zone")
@blp.alt_response(429, schema=ConsultErrorSchema, description="Too many requests from this address")
def slots(args):
    """Free start times between two dates (inclusive) in the visitor's zone, across facilitators."""
    now, fid = now_utc(), args.get("facilitator_id")

    def compute() -> tuple[bytes, bytes | None]:
        found = free_times.slots_for_dates(args["start"], args["end"], args["tz"], now, facilitator_id=fid)
        # Built directly (the schema above documents it): serialising a few thousand slots through
        # marshmallow would cost more than computing them.
        z = zone(args["tz"])
        body = json.dumps({"slots": [_slot_json(s, z) for s in found]}, separators=(",", ":")).encode()
        # A week across all facilitators is ~2,000 slots (~130 KB, ~10 KB gzipped): compressed once
        # with the list, not per request.
        return body, gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_MIN_BYTES else None

    key = ("api-slots", args["start"], args["end"], args["tz"], fid)
    body, packed = free_times.cached_slots(key, now, compute, version=free_times.slots_cache_version(fid))
    resp = current_app.response_class(body, mimetype="application/json")
    resp.vary.add("Accept-Encoding")
    if packed is not None and request.accept_encodings.quality("gzip") > 0:
        resp.set_data(packed)
        resp.headers["Content-Encoding"] = "gzip"
    return resp


@blp.route("/consultations", methods=["POST"])
@limiter.limit(_book_limit, key_func=_client_key)
@blp.doc(security=[], summary="Book a free consult")
@blp.arguments(ConsultBookingRequestSchema())  # one instance, not one per request
@blp.response(201, ConsultBookingSchema)
@blp.alt_response(409, schema=ConsultConflictSchema, description="That time is not free (taken, outside availability, "
                                                          "too soon); `next_slots` suggests others")
@blp.alt_response(422, schema=ConsultErrorSchema, description="Invalid input, with field errors")
@blp.alt_response(429, schema=ConsultErrorSchema, description="Too many requests from this address")
def create(data):
    """Book a consult; the guest gets a confirmation email with a calendar invite and the manage link."""
    now = now_utc()
    tz = data["timezone"]
    try:
        booking = bookings.book(
            start=data["start"], facilitator_id=data.get("facilitator_id"), name=data["name"], email=data["email"],
            phone=data.get("phone"), tz=tz, reason=data.get("reason"), heard_from=data.get("heard_from"),
            answers=data.get("answers") or {}, base_url=urls.base_url(), now=now,
            ctx=request_context(), via="api")
    except free_times.SlotUnavailable as exc:
        after = max(data["start"], now)
        suggestions = free_times.next_free_slots(after, now, facilitator_id=data.get("facilitator_id"), limit=5)
        resp = jsonify(error=exc.message, reason=exc.reason, next_slots=[_slot_json(s, zone(tz)) for s in suggestions])
        resp.status_code = 409
        return resp
    c, z = booking.consult, zone(tz)
    # Built directly, like the slots (the schema above documents it), and read before the commit
    # expires the row.
    body = json.dumps({"id": c.id, "start": c.start_at.astimezone(z).isoformat(), "end": c.end_at.astimezone(z).isoformat(),
                       "facilitator_id": c.facilitator_id, "manage_url": booking.manage_url}, separators=(",", ":"))
    return current_app.response_class(body, status=201, mimetype="application/json")
