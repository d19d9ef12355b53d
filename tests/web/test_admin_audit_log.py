"""Audit log page and CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from retreat import audit
from retreat.models import AuditEvent


def seed_events(db, admin):
    base = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # Denver: the day before the DST change
    audit.record("user.created", actor=admin, object_type="user", object_id=41, now=base,
                 details={"role": "finance"})
    audit.record("user.role_changed", actor=admin, object_type="user", object_id=41,
                 now=base + timedelta(days=1), details={"from": "finance", "to": "admin"})
    audit.record("auth.login_failed", actor_email="intruder@example.com", now=base + timedelta(days=2))
    audit.record("setting.changed", actor=admin, object_type="setting", object_id="=HYPERLINK(\"http://evil\")",
                 now=base + timedelta(days=3))
    db.session.commit()


def rows_of(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return [chunk for chunk in body.split("<tr>")[1:]]


def test_audit_log_filters_newest_first(make_client, db):
    admin = make_client("admin", password=None, tz="America/Denver", email="boss@example.com")
    seed_events(db, admin.user)

    page = admin.get("/admin/audit").get_data(as_text=True)
    rows = rows_of(page)
    actions = [r.split("<code>", 1)[1].split("</code>", 1)[0] for r in rows]
    assert actions[:4] == ["setting.changed", "auth.login_failed", "user.role_changed", "user.created"]
    assert "America/Denver" in page and "MST" in page and "MDT" in page  # local times, DST aware

    page = admin.get("/admin/audit?action=user.").get_data(as_text=True)
    assert "user.role_changed" in page and "user.created" in page and "auth.login_failed" not in page
    page = admin.get("/admin/audit?actor=INTRUDER").get_data(as_text=True)
    assert len(rows_of(page)) == 1 and "auth.login_failed" in page
    page = admin.get("/admin/audit?object_type=user&object_id=41").get_data(as_text=True)
    assert len(rows_of(page)) == 2
    # Days are the admin's own (Denver) days: 2026-03-08 is the DST day, events at 12:00 UTC = 05:00/06:00 local.
    page = admin.get("/admin/audit?date_from=2026-03-08&date_to=2026-03-09").get_data(as_text=True)
    assert [r.split("<code>", 1)[1].split("</code>", 1)[0] for r in rows_of(page)] == [
        "auth.login_failed", "user.role_changed"]

    r = admin.get("/admin/audit?date_from=2026-03-09&date_to=2026-03-01")
    assert r.status_code == 422 and "before the start date" in r.get_data(as_text=True)
    r = admin.get("/admin/audit?date_from=09/03/2026")
    assert r.status_code == 422 and "Not a valid date" in r.get_data(as_text=True)


def test_audit_log_pages(make_client, db):
    admin = make_client("admin", password=None)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(120):
        audit.record("demo.tick", object_type="tick", object_id=i, now=base + timedelta(minutes=i))
    db.session.commit()
    p1 = admin.get("/admin/audit?action=demo.").get_data(as_text=True)
    assert "Page 1 of 3" in p1 and "tick #119" in p1 and "tick #69" not in p1
    p3 = admin.get("/admin/audit?action=demo.&page=3").get_data(as_text=True)
    assert "tick #0<" in p3 and "tick #19<" in p3 and "tick #20<" not in p3
    assert "action=demo." in p3


def test_csv_export_is_filtered_streamed_and_audited(make_client, db):
    admin = make_client("admin", password=None, tz="America/Denver")
    seed_events(db, admin.user)
    r = admin.get("/admin/audit/export.csv?action=user.")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.is_streamed
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["action"] for row in rows] == ["user.role_changed", "user.created"]
    assert rows[0]["object_id"] == "41" and '"to": "admin"' in rows[0]["details"]

    exported = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit.exported"))
    assert exported.actor_id == admin.user.id and exported.details == {"action": "user."}

    r = admin.get("/admin/audit/export.csv?action=setting.")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0]["object_id"].startswith("'=HYPERLINK")  # no spreadsheet formula injection


def test_reading_the_log_is_not_audited_but_bad_export_filters_change_nothing(make_client, db):
    admin = make_client("admin", password=None)
    admin.get("/admin/audit")
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action.startswith("audit."))) is None
    r = admin.get("/admin/audit/export.csv?date_from=yesterday")
    assert r.status_code == 422
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit.exported")) is None
