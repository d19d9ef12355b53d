"""Reading the audit log: filters in a person's own time zone, and the CSV export (itself audited)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select

from retreat import audit
from retreat.audit.models import AuditEvent
from retreat.core.context import Actor, RequestContext
from retreat.core.errors import ValidationFailed
from retreat.core.spreadsheet import safe_cell
from retreat.extensions import db
from retreat.timeutil import zone

CSV_COLUMNS = ("id", "at", "actor_id", "actor_email", "role", "action", "object_type", "object_id", "ip",
               "request_id", "details")


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None  # prefix, e.g. "user." or "auth.login"
    actor: str | None = None  # part of the actor's email
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None  # inclusive, aware
    until: datetime | None = None  # exclusive, aware

    def statement(self) -> Select:
        return audit.query(action=self.action or None, actor=self.actor or None,
                           object_type=self.object_type or None, object_id=self.object_id or None,
                           since=self.since, until=self.until)

    def as_details(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items() if v}


def day_range(date_from: date | None, date_to: date | None, tz: str) -> tuple[datetime | None, datetime | None]:
    """Whole local days [from 00:00, day after ``to`` 00:00) in ``tz`` as aware datetimes (DST-safe)."""
    if date_from and date_to and date_to < date_from:
        raise ValidationFailed("The end date is before the start date.", field="date_to")
    z = zone(tz)
    since = datetime.combine(date_from, time.min, tzinfo=z) if date_from else None
    until = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=z) if date_to else None
    return since, until


def record_export(filters: AuditFilters, *, actor: Actor, ctx: RequestContext | None = None) -> None:
    audit.record("audit.exported", actor=actor, object_type="audit_log", details=filters.as_details() or None,
                 ctx=ctx)


def csv_lines(filters: AuditFilters, *, batch: int = 500) -> Iterator[str]:
    """The filtered events, newest first, as CSV lines (a header first); read in batches."""
    buf = io.StringIO()
    writer = csv.writer(buf)

    def flush() -> str:
        out = buf.getvalue()
        buf.seek(0)
        buf.truncate(0)
        return out

    writer.writerow(CSV_COLUMNS)
    yield flush()
    result = db.session.execute(filters.statement().execution_options(yield_per=batch)).scalars()
    for ev in result:
        ev: AuditEvent
        writer.writerow([safe_cell(v) for v in (
            ev.id, ev.at.isoformat(), ev.actor_id, ev.actor_email, ev.role, ev.action, ev.object_type,
            ev.object_id, ev.ip, ev.request_id, json.dumps(ev.details, sort_keys=True) if ev.details else "",
        )])
        yield flush()
