"""Answering check-ins and surveys from the signed link: validation, escalation (each reason, an
email without details), tokens (tampered, expired, answered twice), surveys stored as outcomes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from retreat.clinical import outcomes
from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.core.crypto import decrypt_field
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.integration import checkins, links
from retreat.integration.followup_models import CheckInResponse, IntegrationAlert
from retreat.messaging.render import render_email
from retreat.models import OutboxMessage
from retreat.privacy import export as privacy_export
from retreat.privacy import key_rotation
from tests import followup_helpers as fh
from tests.followup_helpers import DUE

GOOD = {"score": "7", "sleep": "well", "difficult": "no", "text": "Feeling lighter. My sister noticed."}


@pytest.fixture()
def s(db):
    return fh.setup()


@pytest.fixture()
def enr(s):
    return fh.confirmed(s)


def token(enr, kind="checkin_24h"):
    return fh.token_of(fh.followups_of(enr)[kind])


def alerts() -> list[tuple[str, int]]:
    return [(a.reason, a.enrollment_id) for a in _db.session.scalars(select(IntegrationAlert).order_by(
        IntegrationAlert.id))]


def alert_emails() -> list[OutboxMessage]:
    return list(_db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "integration_alert")))


def responses() -> list[CheckInResponse]:
    return list(_db.session.scalars(select(CheckInResponse)))


def test_a_check_in_is_stored_encrypted_and_needs_no_alert(enr):
    at = DUE["checkin_24h"] + timedelta(hours=1)
    done = checkins.answer(token(enr), GOOD, now=at)
    assert not done.needs_support and alerts() == [] and alert_emails() == []
    f = fh.followups_of(enr)["checkin_24h"]
    assert f.status == "answered" and f.answered_at == at
    (row,) = responses()
    assert json.loads(decrypt_field(row.answers_enc)) == {"score": 7, "sleep": "well", "difficult": False,
                                                          "reach_out": False, "text": GOOD["text"]}
    raw = _db.session.execute(text("SELECT answers_enc FROM checkin_responses")).scalar_one()
    assert "lighter" not in raw and '"score"' not in raw
    assert (CheckInResponse, "answers_enc") in key_rotation.ENCRYPTED_COLUMNS
    assert key_rotation.rotate_keys()["checkin_responses.answers_enc"] == 1  # `flask keys rotate` covers it
    _db.session.expire_all()
    assert json.loads(decrypt_field(responses()[0].answers_enc))["text"] == GOOD["text"]


@pytest.mark.parametrize("answers,reasons", [
    ({**GOOD, "reach_out": "yes"}, ["reach_out"]),
    ({**GOOD, "score": "3"}, ["low_score"]),
    ({**GOOD, "score": "1", "reach_out": "yes"}, ["reach_out", "low_score"]),
    ({**GOOD, "score": "4", "difficult": "yes"}, []),
])
def test_escalation_rules_for_check_ins(s, enr, answers, reasons):
    done = checkins.answer(token(enr), answers, now=DUE["checkin_24h"])
    assert done.reasons == reasons and done.needs_support == bool(reasons)
    assert alerts() == [(r, enr.id) for r in reasons]
    emails = alert_emails()
    assert len(emails) == (1 if reasons else 0)  # one email per answer, whatever the number of reasons
    for msg in emails:
        assert msg.recipient_user_id == s.facilitator.id and msg.essential and msg.due_at == DUE["checkin_24h"]
        rendered = render_email(msg.template, msg.context, recipient_name=msg.recipient_name)
        everything = (rendered.subject + rendered.text + (rendered.html or "")).lower()
        for detail in ("lighter", "sister", "reach out to me", "score", enr.participant.name.lower(),
                       enr.participant.email, "low score", "very low", "item 9", "safety question"):
            assert detail not in everything
        assert s.cohort.title.lower() in everything and "no details" in everything


def test_phq9_item_9_on_a_survey_alerts_and_the_survey_is_stored_as_outcomes(enr):
    phq9 = {f"phq9_{i}": "1" for i in range(1, 10)}
    gad7 = {f"gad7_{i}": "2" for i in range(1, 8)}
    done = checkins.answer(token(enr, "survey_month_1"), {**phq9, **gad7}, now=DUE["survey_month_1"])
    assert done.reasons == ["phq9_item9"] and alerts() == [("phq9_item9", enr.id)]
    rows = {r.instrument: r for r in _db.session.scalars(select(OutcomeMeasure).where(
        OutcomeMeasure.enrollment_id == enr.id, OutcomeMeasure.timepoint == "month_1"))}
    assert outcomes.open_scores(rows["phq9"])["total"] == 9 and outcomes.open_scores(rows["gad7"])["total"] == 14
    assert rows["phq9"].source == "survey"
    assert len(alert_emails()) == 1


def test_a_survey_without_item_9_raises_nothing(enr):
    answers = {f"phq9_{i}": "0" for i in range(1, 10)} | {f"gad7_{i}": "0" for i in range(1, 8)}
    assert checkins.answer(token(enr, "survey_post"), answers, now=DUE["survey_post"]).reasons == []
    assert alerts() == [] and len(list(_db.session.scalars(select(OutcomeMeasure)))) == 2


@pytest.mark.parametrize("bad,field", [
    ({"score": "11"}, "score"), ({"score": "0"}, "score"), ({"score": "7.5"}, "score"), ({"score": ""}, "score"),
    ({"sleep": "great"}, "sleep"), ({"sleep": ""}, "sleep"), ({"difficult": "maybe"}, "difficult"),
    ({"text": "x" * 2001}, "text"),
])
def test_bad_check_in_answers_get_field_errors_and_store_nothing(enr, bad, field):
    with pytest.raises(ValidationFailed) as err:
        checkins.answer(token(enr), {**GOOD, **bad}, now=DUE["checkin_24h"])
    assert list(err.value.errors) == [field]
    assert responses() == [] and fh.followups_of(enr)["checkin_24h"].status == "scheduled"


def test_an_incomplete_survey_names_each_missing_question(enr):
    answers = {f"phq9_{i}": "1" for i in range(1, 9)} | {f"gad7_{i}": "1" for i in range(1, 8)}
    answers["gad7_3"] = "4"
    with pytest.raises(ValidationFailed) as err:
        checkins.answer(token(enr, "survey_post"), answers, now=DUE["survey_post"])
    assert set(err.value.errors) == {"phq9_9", "gad7_3"}
    assert list(_db.session.scalars(select(OutcomeMeasure))) == []


def test_tampered_and_unknown_links_are_refused(enr):
    good = token(enr)
    for bad in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), "nonsense", good.replace(".", "x", 1)):
        with pytest.raises(links.InvalidLink) as err:
            links.open_followup(bad, now=DUE["checkin_24h"])
        assert err.value.status == 400 and "not valid" in err.value.message
    other_secret = links.token_for(fh.followups_of(enr)["checkin_24h"], secret="another-secret-0123456789")
    with pytest.raises(links.InvalidLink):
        links.open_followup(other_secret, now=DUE["checkin_24h"])


def test_an_expired_link_says_so_and_stores_nothing(enr):
    f = fh.followups_of(enr)["checkin_24h"]
    with pytest.raises(links.LinkClosed) as err:
        checkins.answer(token(enr), GOOD, now=f.expires_at)
    assert err.value.status == 410 and "expired" in err.value.message
    assert responses() == []


def test_answering_twice_is_refused_and_the_first_answers_are_kept(enr):
    first_at = DUE["checkin_24h"]
    checkins.answer(token(enr), GOOD, now=first_at)
    with pytest.raises(links.AlreadyAnswered) as err:
        checkins.answer(token(enr), {**GOOD, "score": "2", "reach_out": "yes"}, now=first_at + timedelta(hours=2))
    assert err.value.status == 409 and "already answered" in err.value.message
    assert "Mon 04 May 2026, 13:00" in err.value.message  # in the participant's zone (Denver)
    (row,) = responses()
    assert json.loads(decrypt_field(row.answers_enc))["score"] == 7
    assert alerts() == []


def test_a_withdrawn_participants_link_no_longer_opens(enr):
    from retreat.cohorts import enrollment

    link = token(enr)
    enrollment.withdraw(enr, now=fh.NOW + timedelta(days=1), actor=None)
    with pytest.raises(links.LinkClosed):
        links.open_followup(link, now=DUE["checkin_24h"])


def test_the_participants_data_export_includes_their_check_ins(enr):
    checkins.answer(token(enr), GOOD, now=DUE["checkin_24h"])
    data = privacy_export.export_participant_data(enr.participant, enr.participant, ctx=None, now=DUE["checkin_24h"])
    (row,) = data["check_ins"]
    assert row["check_in"] == "24-hour check-in" and row["answers"]["text"] == GOOD["text"]
