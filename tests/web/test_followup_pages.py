"""The public follow-up page (/follow-up/<token>) and the facilitator's integration panel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.integration.followup_models import CheckInResponse, IntegrationAlert
from retreat.timeutil import now_utc
from tests import followup_helpers as fh
from tests.conftest import signed_in


@pytest.fixture()
def s(db):
    # The last dosing session ended 26 hours ago (real clock: the page reads it).
    return fh.setup(dosing_end=now_utc().replace(microsecond=0) - timedelta(hours=26))


@pytest.fixture()
def enr(db, s):
    e = fh.confirmed(s, name="Robin Example")
    db.session.commit()  # a savepoint in tests: survives the view's rollback after refused answers
    return e


def path(enr, kind="checkin_24h") -> str:
    return "/follow-up/" + fh.token_of(fh.followups_of(enr)[kind])


GOOD = {"score": "6", "sleep": "some_trouble", "difficult": "yes", "text": "The second night was rough."}


def test_the_check_in_form_is_not_cached_and_needs_no_login(client, enr):
    resp = client.get(path(enr), follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "How are you today?" in page and "I would like someone to reach out" in page and "Hello Robin" in page


def test_a_score_out_of_range_gets_a_field_error_and_nothing_is_stored(client, db, enr):
    resp = client.post(path(enr), data={**GOOD, "score": "11"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "Choose a whole number from 1 to 10." in page
    assert 'id="score-error"' in page and "The second night was rough." in page  # answers kept on the form
    assert db.session.scalars(select(CheckInResponse)).all() == []
    assert fh.followups_of(enr)["checkin_24h"].status == "scheduled"


def test_answering_shows_thanks_then_a_second_answer_is_refused(client, db, enr):
    resp = client.post(path(enr), data=GOOD)
    assert resp.status_code == 200 and "Thank you" in resp.get_data(as_text=True)
    assert "crisis-panel" not in resp.get_data(as_text=True)
    again = client.post(path(enr), data={**GOOD, "score": "1"})
    assert again.status_code == 409 and "already answered" in again.get_data(as_text=True)
    assert client.get(path(enr), follow_redirects=True).status_code == 409
    assert len(db.session.scalars(select(CheckInResponse)).all()) == 1
    assert db.session.scalars(select(IntegrationAlert)).all() == []


def test_asking_for_contact_shows_crisis_resources_and_alerts_the_dashboard(app, client, db, s, enr):
    resp = client.post(path(enr), data={**GOOD, "reach_out": "yes"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "crisis-panel" in page
    assert "988" in page and "911" in page and app.config["PRACTICE_CONTACT_EMAIL"] in page

    facilitator = signed_in(app, s.facilitator)
    dash = facilitator.get("/facilitator/")
    html = dash.get_data(as_text=True)
    assert dash.status_code == 200 and dash.headers["Cache-Control"] == "no-store"
    assert "Robin Example" in html and "Asked for someone to reach out" in html
    assert "second night" not in html  # the category only, never the answers
    assert "24-hour check-in" in html  # response rates: 1 answered
    alert = db.session.scalars(select(IntegrationAlert)).one()
    ack = facilitator.post(f"/facilitator/integration-alerts/{alert.id}/acknowledge")
    assert ack.status_code == 303
    db.session.refresh(alert)
    assert alert.acknowledged_by_id == s.facilitator.id and alert.acknowledged_at is not None
    assert "No open integration alerts." in facilitator.get("/facilitator/").get_data(as_text=True)


def test_bad_and_expired_links_get_clear_pages(client, db, enr):
    good = path(enr)
    tampered = client.get(good[:-3] + ("xyz" if not good.endswith("xyz") else "abc"))
    assert tampered.status_code == 400 and "This link is not valid" in tampered.get_data(as_text=True)
    f = fh.followups_of(enr)["checkin_24h"]
    f.expires_at = now_utc() - timedelta(minutes=1)
    db.session.flush()
    expired = client.post(good, data=GOOD)
    assert expired.status_code == 410 and "This link expired" in expired.get_data(as_text=True)
    assert db.session.scalars(select(CheckInResponse)).all() == []


def test_the_form_needs_its_csrf_token(app, client, db, enr, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    assert 'name="csrf_token"' in client.get(path(enr), follow_redirects=True).get_data(as_text=True)
    resp = client.post(path(enr), data=GOOD)
    assert resp.status_code == 400 and "Your form expired" in resp.get_data(as_text=True)
    assert db.session.scalars(select(CheckInResponse)).all() == []


def test_a_survey_shows_phq9_and_gad7_and_stores_the_outcomes(client, db, enr):
    survey = path(enr, "survey_post")
    page = client.get(survey, follow_redirects=True).get_data(as_text=True)
    assert "Little interest or pleasure in doing things" in page and "Feeling nervous, anxious, or on edge" in page
    answers = {f"phq9_{i}": "1" for i in range(1, 10)} | {f"gad7_{i}": "0" for i in range(1, 8)}
    answers["phq9_9"] = "0"
    bad = client.post(survey, data={k: v for k, v in answers.items() if k != "gad7_7"})
    assert bad.status_code == 400 and 'id="gad7_7-error"' in bad.get_data(as_text=True)
    assert db.session.scalars(select(OutcomeMeasure).where(OutcomeMeasure.timepoint == "post")).all() == []
    assert client.post(survey, data=answers).status_code == 200
    stored = db.session.scalars(select(OutcomeMeasure).where(OutcomeMeasure.enrollment_id == enr.id,
                                                             OutcomeMeasure.timepoint == "post")).all()
    assert sorted(r.instrument for r in stored) == ["gad7", "phq9"]


@pytest.fixture()
def limited_app(db):
    from retreat import create_app
    from retreat.extensions import limiter
    from tests.conftest import base_config

    app = create_app(base_config(RATELIMIT_ENABLED=True, FOLLOWUP_RATE_LIMIT="2 per minute"))
    limiter.reset()
    yield app
    limiter.reset()
    limiter.enabled = False  # the other tests' app runs without limits


def test_answers_are_rate_limited_per_address(limited_app, enr):
    c = limited_app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    for _ in range(2):
        assert c.post("/follow-up/not-a-token", data=GOOD).status_code == 400
    assert c.post(path(enr), data=GOOD).status_code == 429
    assert c.get(path(enr), follow_redirects=True).status_code == 200  # reading the form is not limited
    other = limited_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.9.9.10"
    assert other.post(path(enr), data=GOOD).status_code == 200


def test_the_emailed_link_hands_its_token_to_a_token_free_form(client, db, enr):
    from tests.links import follow_link, token_of

    link = path(enr)
    page_url, page = follow_link(client, link)
    assert page_url.startswith("/follow-up/answer/") and token_of(link) not in page.get_data(as_text=True)
    assert f'action="{page_url}"' in page.get_data(as_text=True)
    assert client.post(page_url, data=GOOD).status_code == 200  # answered without the token in the address
    assert fh.followups_of(enr)["checkin_24h"].status == "answered"
    stranger = client.application.test_client()  # another browser: the token-free address alone opens nothing
    r = stranger.get(page_url)
    assert r.status_code == 400 and "open that link again" in r.get_data(as_text=True)
