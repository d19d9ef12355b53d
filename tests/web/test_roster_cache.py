"""The facilitator roster is kept per viewer under the roster's version: a second view costs a few
statements, yet any change a facilitator or participant makes shows on the very next view, a page
with a provider's shared conditions is never kept (each read is audited), and the cache reads
nothing the version does not cover."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, func, select

from retreat.clinical import clearance
from retreat.clinical.access import current_decision
from retreat.cohorts import enrollment
from retreat.cohorts.roster_versions import ROSTER_TABLES
from retreat.core import cache as core_cache
from retreat.extensions import db as _db
from retreat.models import AuditEvent
from retreat.web import page_cache
from tests import factories
from tests import factories_clearance as fcl
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


@pytest.fixture()
def cached(app):
    app.config["ROSTER_CACHE_SECONDS"] = 60
    page_cache.clear()
    yield
    app.config.pop("ROSTER_CACHE_SECONDS")
    page_cache.clear()


@pytest.fixture()
def world(db):
    c = fc.cohort(title="Aspen cohort")
    people = [fc.applicant(c, name=f"Person {i}") for i in range(3)]
    fac = factories.user("facilitator", password=None, name="Fran Facilitator")
    db.session.commit()
    return c, people, fac


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr>\s*<th scope="row">.*?</tr>', html, flags=re.S)


def test_a_kept_roster_is_the_same_page_for_a_few_statements(app, world, cached):
    c, people, fac = world
    client = signed_in(app, fac)
    url = f"/facilitator/cohorts/{c.id}/roster?status=all"
    first = client.get(url).get_data(as_text=True)
    with counting() as statements:
        again = client.get(url)
    assert again.status_code == 200 and again.get_data(as_text=True) == first
    assert len(statements) <= 3, statements  # the server session with its user; the two-factor setting; the roster version
    app.config["ROSTER_CACHE_SECONDS"] = 0
    def untimed(html):  # the sign-out form's token is signed with the time
        return re.sub(r'name="csrf_token" value="[^"]+"', "", html)

    assert untimed(client.get(url).get_data(as_text=True)) == untimed(first)  # what the uncached page shows


def test_every_change_shows_on_the_next_view(app, world, cached):
    c, people, fac = world
    client = signed_in(app, fac)
    url = f"/facilitator/cohorts/{c.id}/roster?status=all"
    assert "Person 0" in client.get(url).get_data(as_text=True)

    # A note through the facilitator's own form.
    assert client.post(f"/facilitator/enrollments/{people[0].id}/note", data={"body": "Arrives late"}).status_code == 302
    row = next(r for r in _rows(client.get(url).get_data(as_text=True)) if "Person 0" in r)
    assert re.search(r"<td[^>]*>1</td>\s*</tr>$", row), row

    # The participant renames themselves; another enrollment moves on.
    people[1].participant.name = "Renamed Person"
    enrollment.submit_intake(people[2], now=fc.NOW, actor=None)
    _db.session.commit()
    html = client.get(url).get_data(as_text=True)
    assert "Renamed Person" in html and "Person 1<" not in html
    row = next(r for r in _rows(html) if "Person 2" in r)
    assert "Intake submitted" in row or "Submitted" in row, row

    # A change in another cohort leaves this one kept.
    other = fc.cohort()
    fc.applicant(other, name="Elsewhere Person")
    _db.session.commit()
    with counting() as statements:
        assert client.get(url).get_data(as_text=True) == html
    assert not [s for s in statements if "enrollments" in s], statements  # kept: nothing of the roster read


def test_a_page_with_shared_conditions_is_read_and_audited_every_time(app, db, cached):
    s = fcl.setup()
    fac = factories.user("facilitator", password=None)
    fcl.decide(s, fcl.submit(s), "cleared_with_conditions", conditions="Ground-floor room (mobility)",
               conditions_shareable=True)
    db.session.commit()
    client = signed_in(app, fac)
    url = f"/facilitator/cohorts/{s.cohort.id}/roster?status=all"

    def reads():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "clinical.read", AuditEvent.actor_id == fac.id))

    for n in (1, 2, 3):
        assert "Ground-floor room (mobility)" in client.get(url).get_data(as_text=True)
        assert reads() == n

    # The conditions stop being shareable: the next view no longer shows them (and reads nothing).
    current_decision(s.enrollment.id).conditions_shareable = False
    db.session.commit()
    assert "Ground-floor room (mobility)" not in client.get(url).get_data(as_text=True)
    assert reads() == 3


def test_the_roster_reads_only_what_its_version_covers(app, db):
    """Every table the roster reads is one whose writes raise the roster's version (or the viewer's
    own account and settings): a new column read from elsewhere must be added to the tracking."""
    s = fcl.setup()
    fac = factories.user("facilitator", password=None)
    fcl.decide(s, fcl.submit(s), "cleared_with_conditions", conditions="Vegan meals", conditions_shareable=True)
    pending = fcl.another_applicant(s)
    clearance.submit(pending, pending.participant, fcl.answers(), now=s.now)
    db.session.commit()
    client = signed_in(app, fac)
    seen: set[str] = set()

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.update(re.findall(r'(?:FROM|JOIN)\s+"?([a-z_]+)"?', statement, flags=re.I))

    event.listen(_db.engine, "before_cursor_execute", grab)
    try:
        for status in ("all", "active", "waitlist", "pending"):
            assert client.get(f"/facilitator/cohorts/{s.cohort.id}/roster?status={status}").status_code == 200
    finally:
        event.remove(_db.engine, "before_cursor_execute", grab)
    assert {"enrollments", "clearance_requests"} <= seen
    assert seen - ROSTER_TABLES - {"cache_versions", "site_settings", "user_sessions"} == set()


def test_kept_pages_expire(app, world, cached, monkeypatch):
    """Time passing changes nothing in the database (an offer lapsing on its own): the time limit bounds it."""
    c, people, fac = world
    client = signed_in(app, fac)
    url = f"/facilitator/cohorts/{c.id}/roster?status=all"
    client.get(url)
    clock = [core_cache.time.monotonic()]
    monkeypatch.setattr(core_cache.time, "monotonic", lambda: clock[0])
    with counting() as statements:
        client.get(url)
    kept = len(statements)
    clock[0] += 61
    with counting() as statements:
        client.get(url)
    assert len(statements) > kept


def test_a_missing_or_deleted_cohort_is_a_404_even_when_kept(app, db, cached):
    fac = factories.user("facilitator", password=None)
    empty = fc.cohort(title="Empty cohort")
    db.session.commit()
    client = signed_in(app, fac)
    assert client.get("/facilitator/cohorts/987654/roster").status_code == 404
    assert "Empty cohort" in client.get(f"/facilitator/cohorts/{empty.id}/roster").get_data(as_text=True)
    db.session.delete(empty)
    db.session.commit()
    assert client.get(f"/facilitator/cohorts/{empty.id}/roster").status_code == 404


def test_a_kept_page_belongs_to_one_session_and_never_swallows_a_message(app, world, cached):
    c, people, fac = world
    url = f"/facilitator/cohorts/{c.id}/roster?status=all"
    mine, other = signed_in(app, fac), signed_in(app, fac)  # the same person on two devices
    for client in (mine, other):
        client.get(url)

    def token(html):
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    a, b = mine.get(url).get_data(as_text=True), other.get(url).get_data(as_text=True)
    with mine.session_transaction() as s1, other.session_transaction() as s2:
        assert s1["csrf_token"] != s2["csrf_token"]
    assert token(a) != token(b)  # each page's forms carry a token of its own session
    # A message waiting to be shown: the page is made for it, once.
    assert mine.post(f"/facilitator/enrollments/{people[0].id}/note", data={"body": "Arrives late"}).status_code == 302
    shown = mine.get(url).get_data(as_text=True)
    assert "Note added." in shown
    assert "Note added." not in mine.get(url).get_data(as_text=True)
    # The viewer's own name in the navigation follows a change at once.
    fac.name = "Frances Facilitator"
    _db.session.commit()
    assert "Frances Facilitator" in mine.get(url).get_data(as_text=True)
