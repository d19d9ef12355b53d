"""RFC 5545 calendar invites built with the icalendar library.

An event is described by a plain dict (it is stored in outbox rows as JSON):

    {"uid": "consult-12@retreat", "sequence": 0, "method": "REQUEST" | "CANCEL",
     "start": "2026-03-08T16:00:00+00:00", "end": "...", "summary": "...",
     "description": "...", "location": "...", "url": "...",
     "organizer_email": "...", "organizer_name": "...",
     "attendee_email": "...", "attendee_name": "..."}

Times are written in UTC (``...Z``), which every calendar shows in its own local time. The UID
stays the same across reschedules and cancellation; SEQUENCE must increase with each change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from retreat.timeutil import now_utc

PRODID = "-//retreat//KAP retreat operations//EN"
METHODS = frozenset({"REQUEST", "CANCEL", "PUBLISH"})


class IcsError(ValueError):
    pass


def _dt(value) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise IcsError(f"not an ISO 8601 time: {value!r}") from exc
    if dt.tzinfo is None:
        raise IcsError("event times need a time zone")
    return dt.astimezone(UTC)


def event_spec(*, uid: str, start: datetime, end: datetime, summary: str, sequence: int = 0,
               method: str = "REQUEST", description: str = "", location: str = "", url: str = "",
               organizer_email: str = "", organizer_name: str = "", attendee_email: str = "",
               attendee_name: str = "") -> dict:
    """Build the JSON-safe dict that outbox rows carry."""
    return {
        "uid": uid, "sequence": int(sequence), "method": method,
        "start": _dt(start).isoformat(), "end": _dt(end).isoformat(), "summary": summary,
        "description": description, "location": location, "url": url,
        "organizer_email": organizer_email, "organizer_name": organizer_name,
        "attendee_email": attendee_email, "attendee_name": attendee_name,
    }


def build_calendar(spec: dict, *, stamp: datetime | None = None) -> bytes:
    """Serialize one event (or its cancellation) as an ``.ics`` file."""
    method = (spec.get("method") or "REQUEST").upper()
    if method not in METHODS:
        raise IcsError(f"unknown calendar method {method!r}")
    if not spec.get("uid"):
        raise IcsError("an event needs a stable uid")
    start, end = _dt(spec["start"]), _dt(spec["end"])
    if end <= start:
        raise IcsError("an event must end after it starts")

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)

    ev = Event()
    ev.add("uid", spec["uid"])
    ev.add("sequence", int(spec.get("sequence") or 0))
    ev.add("dtstamp", (stamp or now_utc()).astimezone(UTC))
    ev.add("dtstart", start)
    ev.add("dtend", end)
    ev.add("summary", spec.get("summary") or "")
    if spec.get("description"):
        ev.add("description", spec["description"])
    if spec.get("location"):
        ev.add("location", spec["location"])
    if spec.get("url"):
        ev.add("url", spec["url"])
    ev.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    ev.add("transp", "OPAQUE")
    if spec.get("organizer_email"):
        org = vCalAddress(f"mailto:{spec['organizer_email']}")
        if spec.get("organizer_name"):
            org.params["cn"] = vText(spec["organizer_name"])
        ev["organizer"] = org
    if spec.get("attendee_email"):
        att = vCalAddress(f"mailto:{spec['attendee_email']}")
        if spec.get("attendee_name"):
            att.params["cn"] = vText(spec["attendee_name"])
        att.params["role"] = vText("REQ-PARTICIPANT")
        att.params["partstat"] = vText("ACCEPTED" if method != "CANCEL" else "DECLINED")
        ev.add("attendee", att, encode=0)
    cal.add_component(ev)
    return cal.to_ical()


def ics_response(spec: dict, filename: str = "invite.ics", *, stamp: datetime | None = None):
    """A Flask response offering the event as a download (``Add to calendar`` links).

    Downloads use METHOD:PUBLISH (a plain event to import) unless the spec says CANCEL.
    """
    from flask import Response

    method = "CANCEL" if (spec.get("method") or "").upper() == "CANCEL" else "PUBLISH"
    body = build_calendar({**spec, "method": method}, stamp=stamp)
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "invite.ics"
    if not safe.endswith(".ics"):
        safe += ".ics"
    return Response(body, mimetype="text/calendar", headers={
        "Content-Disposition": f'attachment; filename="{safe}"',
        "Cache-Control": "private, no-store",
    })
