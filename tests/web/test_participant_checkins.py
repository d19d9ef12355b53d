"""The participant's own check-ins (/me/check-ins): what they were sent, their ratings and scores,
their answers to one of them; nobody else's, and the same number of statements for many rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.cohorts import enrollment, seats
from retreat.extensions import db as _db
from retreat.integration import checkins
from retreat.integration.followup_models import FollowUp
from retreat.models import AuditEvent
from retreat.timeutil import now_utc
from tests import factories
from tests import followup_helpers as fh
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting

CHECKIN = {"score": "6", "sleep": "some_trouble", "difficult": "yes", "text": "The second night was rough."}
SURVEY = {f"phq9_{i}": "1" for i in range(1, 10)} | {f"gad7_{i}": "2" for i in range(1, 8)} | {"phq9_9": "0"}


@pytest.fixture()
def s(db):
    # The last dosing session ended 26 hours ago (real clock: the pages read it).
    return fh.setup(dosing_end=now_utc().replace(microsecond=0) - timedelta(hours=26))


def _answer(f: FollowUp, form: dict):
    return checkins.answer(fh.token_of(f), form, now=min(now_utc(), f.expires_at - timedelta(minutes=1)))


def _sent(f: FollowUp, hours_ago: int = 1) -> None:
    f.status, f.sent_at = "sent", now_utc().replace(microsecond=0) - timedelta(hours=hours_ago)
    _db.session.flush()


def _enrol_again(participant, dosing_end):
    """Another confirmed enrollment (a new cohort) for the same participant."""
    s2 = fh.setup(dosing_end=dosing_end)
    enr = enrollment.apply(s2.cohort, participant, now=fh.NOW)
    seats.take_hold(enr, now=fh.NOW, actor=None)
    enrollment.confirm_seat(enr, now=fh.NOW, actor=None)
    _db.session.flush()
    return enr


@pytest.fixture()
def robin(db, s):
    """Robin answered the 24-hour check-in and the post-retreat survey; the 72-hour one is sent, unanswered."""
    enr = fh.confirmed(s, name="Robin Example")
    fs = fh.followups_of(enr)
    _sent(fs["checkin_24h"], 3)
    _answer(fs["checkin_24h"], CHECKIN)
    _sent(fs["survey_post"], 2)
    _answer(fs["survey_post"], SURVEY)
    _sent(fs["checkin_72h"], 1)
    db.session.commit()
    return enr


def test_the_list_shows_answered_and_pending_check_ins_with_scores(app, db, robin):
    client = signed_in(app, robin.participant)
    resp = client.get("/me/check-ins")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "<caption" in page and "Your check-ins" in page
    fs = fh.followups_of(robin)
    # newest first: the 72-hour check-in (sent 1 h ago), the survey (2 h), the 24-hour check-in (3 h)
    assert page.index("72-hour check-in") < page.index("Survey right after the retreat") < page.index("24-hour check-in")
    assert "You felt 6 out of 10" in page
    assert "PHQ-9 (depression): 8 (mild)" in page and "GAD-7 (anxiety): 14 (moderate)" in page
    assert f'href="/me/check-ins/{fs["checkin_24h"].id}"' in page and f'href="/me/check-ins/{fs["survey_post"].id}"' in page
    assert f'href="/follow-up/{fh.token_of(fs["checkin_72h"])}"' in page and "Answer now" in page
    assert f'/me/check-ins/{fs["checkin_72h"].id}"' not in page  # nothing to show before it is answered
    assert "1-month survey" not in page and "3-month survey" not in page  # not sent yet
    assert "second night" not in page  # the free text only on the detail page
    assert "Check-ins" in page and 'href="/me/check-ins"' in page  # in the navigation
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "checkins.read",
                                                      AuditEvent.actor_id == robin.participant_id)) is not None


def test_an_expired_unanswered_check_in_says_so_without_a_link(app, db, robin):
    f = fh.followups_of(robin)["checkin_72h"]
    f.expires_at = now_utc() - timedelta(minutes=1)
    db.session.commit()
    page = signed_in(app, robin.participant).get("/me/check-ins").get_data(as_text=True)
    assert "Not answered" in page and fh.token_of(f) not in page and "Answer now" not in page


def test_the_detail_shows_the_participants_own_answers(app, db, robin):
    client = signed_in(app, robin.participant)
    fs = fh.followups_of(robin)
    resp = client.get(f"/me/check-ins/{fs['checkin_24h'].id}")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "How are you today?" in page and "Some trouble sleeping" in page and "The second night was rough." in page
    assert "crisis-panel" not in page
    survey = client.get(f"/me/check-ins/{fs['survey_post'].id}").get_data(as_text=True)
    assert "Little interest or pleasure in doing things" in survey and "Several days" in survey
    assert "More than half the days" in survey and "PHQ-9 (depression): 8 (mild)" in survey
    assert "crisis-panel" not in survey
    # not answered yet: nothing to show
    assert client.get(f"/me/check-ins/{fs['checkin_72h'].id}").status_code == 404


def test_reach_out_a_low_score_or_phq9_item_9_shows_the_crisis_resources(app, db, s):
    enr = fh.confirmed(s)
    fs = fh.followups_of(enr)
    _answer(fs["checkin_24h"], {**CHECKIN, "reach_out": "yes"})
    _answer(fs["checkin_72h"], {**CHECKIN, "score": "2"})  # as on the page after answering
    _answer(fs["survey_post"], {**SURVEY, "phq9_9": "1"})
    db.session.commit()
    client = signed_in(app, enr.participant)
    for kind in ("checkin_24h", "checkin_72h", "survey_post"):
        page = client.get(f"/me/check-ins/{fs[kind].id}").get_data(as_text=True)
        assert "crisis-panel" in page and "988" in page and "911" in page, kind
        assert app.config["PRACTICE_CONTACT_EMAIL"] in page
    listing = client.get("/me/check-ins").get_data(as_text=True)
    assert "<td>Yes</td>" in listing  # asked to be contacted


def test_another_participants_check_ins_are_404_and_not_listed(app, db, s, robin):
    other = fh.confirmed(s, name="Sam Other")
    ofs = fh.followups_of(other)
    _answer(ofs["checkin_24h"], {**CHECKIN, "text": "Sam's private words"})
    _sent(ofs["checkin_72h"])
    db.session.commit()
    client = signed_in(app, robin.participant)
    assert client.get(f"/me/check-ins/{ofs['checkin_24h'].id}").status_code == 404
    assert client.get(f"/me/check-ins/{ofs['checkin_72h'].id}").status_code == 404
    assert client.get("/me/check-ins/999999").status_code == 404
    page = client.get("/me/check-ins").get_data(as_text=True)
    assert f"/me/check-ins/{ofs['checkin_24h'].id}\"" not in page and fh.token_of(ofs["checkin_72h"]) not in page
    assert page.count("<tr>") == 1 + 3  # header + Robin's three
    # and Sam sees only Sam's
    sam = signed_in(app, other.participant).get(f"/me/check-ins/{ofs['checkin_24h'].id}").get_data(as_text=True)
    assert "Sam&#39;s private words" in sam
    assert signed_in(app, other.participant).get(f"/me/check-ins/{fh.followups_of(robin)['checkin_24h'].id}").status_code == 404


def test_anonymous_is_sent_to_sign_in_and_staff_get_403(app, db, robin):
    anon = app.test_client()
    fid = fh.followups_of(robin)["checkin_24h"].id
    for path in ("/me/check-ins", f"/me/check-ins/{fid}"):
        resp = anon.get(path)
        assert resp.status_code == 302 and "/account/login" in resp.headers["Location"], path
    for role in ("facilitator", "provider", "finance", "admin"):
        staff = signed_in(app, factories.user(role, password=None))
        assert staff.get("/me/check-ins").status_code == 403, role
        assert staff.get(f"/me/check-ins/{fid}").status_code == 403, role


def test_an_empty_list_says_what_will_appear(app, db):
    page = signed_in(app, factories.user("participant", password=None)).get("/me/check-ins").get_data(as_text=True)
    assert "No check-ins yet." in page


def _answered_enrollment(participant, dosing_end):
    enr = _enrol_again(participant, dosing_end)
    fs = fh.followups_of(enr)
    for kind, form in (("checkin_24h", CHECKIN), ("checkin_72h", CHECKIN), ("survey_post", SURVEY)):
        _sent(fs[kind])
        _answer(fs[kind], form)
    _sent(fs["survey_month_1"])
    return enr


def _measure(client, paths) -> dict[str, int]:
    out = {}
    for path in paths:
        client.get(path)  # one-time work of a first request
        with counting() as statements:
            resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[-500:])
        out[path] = len(statements)
    return out


def test_statement_count_does_not_grow_with_the_number_of_check_ins(app, db):
    person = factories.user("participant", password=None)
    base = now_utc().replace(microsecond=0) - timedelta(hours=26)
    first = _answered_enrollment(person, base)
    db.session.commit()
    client = signed_in(app, person)
    fs = fh.followups_of(first)
    paths = ["/me/check-ins", f"/me/check-ins/{fs['checkin_24h'].id}", f"/me/check-ins/{fs['survey_post'].id}"]
    small = _measure(client, paths)
    for i in range(1, 6):
        _answered_enrollment(person, base - timedelta(days=20 * i))
        db.session.commit()  # each its own request (its row locks end with it)
    assert db.session.query(FollowUp).count() >= 6 * 4
    large = _measure(client, paths)
    page = client.get("/me/check-ins").get_data(as_text=True)
    assert page.count("You felt 6 out of 10") == 12 and page.count("PHQ-9 (depression): 8 (mild)") == 6
    assert large == small, (small, large)
    assert max(large.values()) < 12
