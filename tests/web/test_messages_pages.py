"""The admin's outbox pages through every message (no cap), filters by status, kind and recipient
(empty fields mean "any"; bad ones a 400 that names the field), and opens one message: headers,
delivery, body, with sealed links never shown."""

from __future__ import annotations

import re

import pytest

from retreat.extensions import db as _db
from retreat.messaging import outbox
from retreat.models import OutboxMessage
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting

SECRET = "https://retreat.example/follow-up/SECRET-CAPABILITY-TOKEN"


def _many(n: int, template="integration_alert", prefix="p"):
    base = factories.n() * 10000
    _db.session.add_all([OutboxMessage(
        dedupe_key=f"{prefix}-{base + i}", recipient_email=f"{prefix}{base + i}@example.com", recipient_tz="UTC",
        template=template, context={"recipient_name": "X", "cohort_title": "Spring", "url": "https://r/x"},
        essential=True, due_at=now_utc(), next_attempt_at=now_utc(), status="pending", attempts=0)
        for i in range(n)])
    _db.session.flush()


@pytest.fixture()
def admin(app, db):
    return signed_in(app, factories.user("admin", password=None))


def _ids(html: str) -> set[str]:
    return set(re.findall(r'/admin/messages/(\d+)"', html))


def test_every_message_is_reachable_page_by_page(admin, db):
    _many(120)
    db.session.commit()
    first = admin.get("/admin/messages").get_data(as_text=True)
    assert "120 messages" in first and "Page 1 of 3" in first and "at most" not in first
    seen = set()
    for n in (1, 2, 3):
        seen |= _ids(admin.get(f"/admin/messages?page={n}").get_data(as_text=True))
    assert len(seen) == 120
    assert _ids(admin.get("/admin/messages?page=9").get_data(as_text=True)) == set()  # past the end: empty


def test_filters_accept_their_empty_fields_and_name_a_bad_one(admin, db):
    _many(3, template="integration_alert", prefix="ia")
    _many(2, template="safety_alert", prefix="sa")
    db.session.commit()
    everything = admin.get("/admin/messages?status=&kind=&recipient=&q=")
    assert everything.status_code == 200 and "5 messages" in everything.get_data(as_text=True)
    safety_only = admin.get("/admin/messages?kind=safety_alert").get_data(as_text=True)
    assert "2 messages" in safety_only and "ia" not in "".join(re.findall(r"[a-z]+\d+@example.com", safety_only))
    one = re.findall(r"(sa\d+)@example.com", safety_only)[0]
    assert "1 message" in admin.get(f"/admin/messages?recipient={one}").get_data(as_text=True)
    paged = admin.get("/admin/messages?kind=safety_alert&page=1").get_data(as_text=True)
    assert "2 messages" in paged
    bad = admin.get("/admin/messages?kind=nonexistent")
    assert bad.status_code == 400 and "Not a valid choice" in bad.get_data(as_text=True)
    long = admin.get("/admin/messages?recipient=" + "x" * 300)
    assert long.status_code == 400 and "Recipient (address or name) must be at most 254 characters" in long.get_data(
        as_text=True)
    assert admin.get("/admin/messages?status=bogus").status_code == 400


def test_one_message_shows_headers_delivery_and_body_but_never_its_sealed_link(admin, db):
    user = factories.user("participant", password=None, name="Robin Reader")
    m = outbox.enqueue(template="followup_checkin", dedupe_key="detail-1", to_user=user,
                       context={"participant_name": "Robin", "cohort_title": "Spring cohort", "kind": "checkin_24h",
                                "kind_label": "24-hour check-in", "is_checkin": True,
                                "expires_at": now_utc().isoformat()},
                       private={"url": SECRET})
    m.attempts, m.last_error = 2, "451 try later"
    db.session.commit()
    resp = admin.get(f"/admin/messages/{m.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "How are you doing? A short check-in from" in html  # the subject
    assert user.email in html and "Robin Reader" in html and "451 try later" in html and "detail-1" in html
    assert "This is your 24-hour check-in after Spring cohort" in html  # the body
    assert "[sealed link: not shown]" in html and "SECRET-CAPABILITY-TOKEN" not in html
    assert "Sealed entries" in html and "yes: this message carries a capability link" in html
    assert admin.get("/admin/messages/99999999").status_code == 404
    assert admin.get(f"/admin/messages/{m.id}").status_code == 200


def test_a_cancel_from_the_detail_page_comes_back_to_it(admin, db):
    m = outbox.enqueue(template="integration_alert", dedupe_key="detail-2", to_email="x@example.com",
                       context={"cohort_title": "Spring", "url": "https://r/x"})
    db.session.commit()
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get(f"/admin/messages/{m.id}").get_data(
        as_text=True))
    data = {"csrf_token": token.group(1)} if token else {}
    r = admin.post(f"/admin/messages/{m.id}/cancel?back=detail", data=data)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/admin/messages/{m.id}")
    _db.session.expire_all()
    assert _db.session.get(OutboxMessage, m.id).status == "cancelled"


def test_the_pages_cost_the_same_statements_with_10_and_500_messages(admin, db):
    def measure():
        admin.get("/admin/messages")
        out = {}
        for path in ("/admin/messages", "/admin/messages?page=2&kind=integration_alert"):
            with counting() as statements:
                assert admin.get(path).status_code == 200
            out[path] = len(statements)
        return out

    _many(10)
    db.session.commit()
    small = measure()
    _many(490)
    db.session.commit()
    print("messages statements:", small)
    assert measure() == small
