"""A dosing day in a real browser, from check-in to discharge, with two clinicians on one board and
the connection lost in the middle.

- The board updates in place: clinician B sees clinician A's entries within seconds without a
  reload, and A's half-typed form keeps its text while the card around it changes.
- A write based on a stale state (B changed the person meanwhile) is refused with both versions
  shown, and A's typed text stays in the form to send again.
- An entry made offline waits on the device (shown as waiting to be sent, never as saved) and is
  stored exactly once when the connection returns, even when the same entry is sent again.
- axe finds nothing serious or critical on the board at desktop and phone widths.
"""

from datetime import timedelta
from pathlib import Path

import pytest

from retreat.accounts import users as accounts
from retreat.clinical import staffing
from retreat.clinical.dosing_models import DosingEntry, DosingRecord
from retreat.cohorts import enrollment, seats
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.extensions import db
from retreat.timeutil import now_utc
from tests import factories_cohorts as fc
from tests.e2e.helpers import PASSWORD, sign_in
from tests.unit.test_dosing_readiness import _prepared

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-dosing")


def _state(page, enr_id, label, timeout=15_000):
    page.wait_for_selector(f"#person-{enr_id} [data-role=state]:has-text('{label}')", timeout=timeout)


def _open(page, enr_id, summary):
    details = page.locator(f"#person-{enr_id} details", has=page.locator("summary", has_text=summary))
    if details.get_attribute("open") is None:
        details.locator("summary").click()


def _vitals(page, enr_id, action):
    form = page.locator(f"#person-{enr_id} form[action$='/{action}']")
    for name, value in {"systolic": "124", "diastolic": "80", "heart_rate": "72", "spo2": "98"}.items():
        form.locator(f"input[name={name}]").fill(value)
    return form


def _axe(page, width):
    from axe_playwright_python.sync_playwright import Axe

    page.set_viewport_size({"width": width, "height": 900})
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"e2e-board-{width}.png"), full_page=True)
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not serious, (width, [(v["id"], v["help"]) for v in serious])


def _no_reload_marker(page):
    page.evaluate("window.__sameDocument = 'yes'")


def _same_document(page):
    return page.evaluate("window.__sameDocument") == "yes"


def test_dosing_day_two_clinicians_offline_entry_check_in_to_discharge(live_server, page, browser):
    now = now_utc()
    with live_server.app.app_context():
        org = accounts.create_provider_organization("Front Range Medical Partners")
        clinicians = []
        for email, name, lic in (("dr.priya@example.com", "Priya Provider", "DR.0061234"),
                                 ("np.lee@example.com", "Lee Nurse", "DR.0061235")):
            u = accounts.create_user(email=email, name=name, role="provider", password=PASSWORD, verified=True,
                                     provider_organization=org, tz="America/Denver")
            accounts.add_license(u, number=lic, state="CO", expires_on=(now + timedelta(days=400)).date())
            clinicians.append(u)
        cohort = fc.cohort(fc.retreat(region="CO"), provider_organization_id=org.id, starts_at=now - timedelta(hours=2))
        s = CohortSession(cohort=cohort, kind=SessionKind.DOSING, title="Dosing day 1",
                          starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=4), location="Ceremony room")
        db.session.add(s)
        db.session.flush()
        earlier = now - timedelta(days=3)  # applied before the cohort started
        enr = fc.applicant(cohort, now=earlier, name="Robin Ready")
        seats.take_hold(enr, now=earlier, actor=None)
        enrollment.confirm_seat(enr, now=earlier, actor=None)
        fc.record_clearance(enr, now=earlier)
        _prepared(enr)
        for u in clinicians:
            staffing.assign(s, u, actor=u)
        db.session.commit()
        sid, eid = s.id, enr.id

    a = page
    b_ctx = browser.new_context(timezone_id="America/Denver", locale="en-US")
    b = b_ctx.new_page()
    b.set_default_timeout(10_000)
    try:
        a.set_viewport_size({"width": 1280, "height": 900})
        b.set_viewport_size({"width": 390, "height": 844})
        sign_in(a, live_server.url, "dr.priya@example.com")
        sign_in(b, live_server.url, "np.lee@example.com")
        board = f"{live_server.url}/provider/dosing/{sid}"
        a.goto(board)
        b.goto(board)
        _axe(a, 1280)
        _no_reload_marker(a)
        _no_reload_marker(b)

        # A checks Robin in; B sees it within seconds, without a reload.
        a.locator(f"#person-{eid} button", has_text="Check in").click()
        _state(a, eid, "Checked in")
        _state(b, eid, "Checked in", timeout=10_000)
        assert b.locator(f"#person-{eid} .entries li", has_text="check in").count() == 1
        assert _same_document(b)

        # A starts a note; meanwhile B records the pre-session vitals.
        _open(a, eid, "Note")
        a.locator(f"#person-{eid} form[action$='/note'] textarea").fill("Family member called, half")
        _vitals(b, eid, "pre_vitals").locator("button").click()
        _state(b, eid, "Pre-checks done")
        _state(a, eid, "Pre-checks done", timeout=10_000)  # A's card follows in place ...
        assert a.locator(f"#person-{eid} .entries li", has_text="pre vitals").count() == 1
        note = a.locator(f"#person-{eid} form[action$='/note'] textarea")
        assert note.input_value() == "Family member called, half"  # ... and A's typing is untouched
        assert _same_document(a)

        # A's note was started on the old version: refused, both versions shown, text kept.
        note.fill("Family member called, will pick up at 5")
        a.locator(f"#person-{eid} form[action$='/note'] button").click()
        alert = a.locator(f"#person-{eid} [data-role=stale] [role=alert]")
        alert.wait_for()
        assert "What you sent (based on version 2)" in alert.inner_text()
        assert "Now on the record (version 3)" in alert.inner_text()
        assert "Family member called, will pick up at 5" in alert.inner_text()
        assert "pre vitals" in alert.locator("[data-role=current]").inner_text()
        assert note.input_value() == "Family member called, will pick up at 5"
        a.locator(f"#person-{eid} form[action$='/note'] button").click()  # sent again, knowingly
        a.wait_for_selector(f"#person-{eid} .entries li:has-text('will pick up at 5')", timeout=15_000)
        assert a.locator(f"#person-{eid} [data-role=stale] [role=alert]").count() == 0
        b.wait_for_selector(f"#person-{eid} .entries li:has-text('will pick up at 5')", timeout=10_000)

        # The connection drops: the dose waits on A's device and is never shown as saved.
        a.context.set_offline(True)
        _open(a, eid, "Dose")
        form = a.locator(f"#person-{eid} form[action$='/dose']")
        form.locator("input[name=amount]").fill("200")
        form.locator("select[name=unit]").select_option("mg")
        form.locator("button").click()
        a.wait_for_selector("#sync-status:has-text('waiting to be sent')")
        assert a.locator(f"#person-{eid} .entries li.pending", has_text="Waiting to send: dose").count() == 1
        a.wait_for_timeout(3500)  # a poll interval passes offline: still waiting, nothing claimed
        assert "Dosed" not in a.locator(f"#person-{eid} [data-role=state]").inner_text()
        assert a.locator(f"#person-{eid} .entries li:not(.pending)", has_text="dose").count() == 0
        queued = a.evaluate(f"JSON.parse(localStorage.getItem('retreat.dosing.queue.{sid}'))")
        assert len(queued) == 1
        dose_key = queued[0]["body"]["idempotency_key"]
        with live_server.app.app_context():
            assert db.session.query(DosingEntry).filter_by(idempotency_key=dose_key).count() == 0

        a.context.set_offline(False)
        _state(a, eid, "Dosed")
        assert a.locator(".entries li.pending").count() == 0
        assert a.locator("#sync-status").is_hidden()
        _state(b, eid, "Dosed", timeout=10_000)
        # the same entry replayed (a flaky network resends it) is stored once
        replay = a.evaluate("""async (item) => {
            const csrf = document.querySelector("input[name=csrf_token]").value;
            const r = await fetch(item.url, {method: "POST", headers: {"Content-Type": "application/json",
                "Accept": "application/json", "X-CSRFToken": csrf}, body: JSON.stringify(item.body)});
            return [r.status, (await r.json()).replayed];
        }""", queued[0])
        assert replay == [200, True]

        _open(a, eid, "Observation check")
        a.locator(f"#person-{eid} form[action$='/check'] textarea").fill("Calm, responsive, breathing easily")
        a.locator(f"#person-{eid} form[action$='/check'] button").click()
        a.wait_for_selector(f"#person-{eid} .entries li:has-text('Calm, responsive')", timeout=15_000)
        b.wait_for_selector(f"#person-{eid} .entries li:has-text('Calm, responsive')", timeout=10_000)
        a.locator(f"#person-{eid} form[action$='/recovery'] button").click()
        _state(a, eid, "Recovering")
        a.set_viewport_size({"width": 390, "height": 844})
        _open(a, eid, "Post-session vitals")
        _vitals(a, eid, "post_vitals").locator("button").click()
        a.wait_for_selector(f"#person-{eid} .entries li:not(.pending):has-text('post vitals')", timeout=15_000)
        _open(a, eid, "Discharge sign-off")
        for box in a.locator(f"#person-{eid} form[action$='/discharge'] input[type=checkbox]").all():
            box.check()
        a.locator(f"#person-{eid} form[action$='/discharge'] button").click()
        _state(a, eid, "Discharged")
        _state(b, eid, "Discharged", timeout=10_000)
        assert _same_document(a) and _same_document(b)
        _axe(a, 390)
    finally:
        b_ctx.close()

    with live_server.app.app_context():
        rec = db.session.query(DosingRecord).filter_by(session_id=sid, enrollment_id=eid).one()
        entries = db.session.query(DosingEntry).filter_by(record_id=rec.id).order_by(DosingEntry.id).all()
        assert [e.kind for e in entries] == ["check_in", "pre_vitals", "note", "dose", "check", "recovery",
                                             "post_vitals", "discharge"]
        assert len({e.idempotency_key for e in entries}) == len(entries)
        assert db.session.query(DosingEntry).filter_by(idempotency_key=dose_key).count() == 1
        assert rec.version == 1 + len(entries)
