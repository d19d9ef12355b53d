"""Follow-ups: scheduled from the integration plan's touchpoints, moved with it, sent once through
the dispatcher, outside the participant's quiet hours, stopped on withdrawal and opt-out; the
no-response alert for the 72-hour check-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retreat import scheduler
from retreat.cohorts import enrollment
from retreat.extensions import db as _db
from retreat.integration import followups
from retreat.integration import plan as ip
from retreat.integration.followup_models import FollowUp, IntegrationAlert
from retreat.messaging import dispatcher
from retreat.messaging.transport import transport_from_config
from retreat.models import OutboxMessage
from tests import followup_helpers as fh
from tests.followup_helpers import DUE, NOW


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def dispatch(smtp, now):
    return dispatcher.dispatch_due(now, transport=smtp.transport)


def followup_mails(smtp) -> list:
    """The follow-up emails the SMTP server received (other features queue reminders too)."""
    return [m for m in smtp.messages if "/follow-up/" in m.get_body(("plain",)).get_content()]


def count(model) -> int:
    return _db.session.scalar(select(func.count()).select_from(model))


def test_a_confirmed_seat_gets_the_plans_follow_ups_queued_in_the_outbox(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    rows = fh.followups_of(enr)
    assert {k: f.due_at for k, f in rows.items()} == DUE
    for f in rows.values():
        msg = fh.message_of(f)
        assert f.status == "scheduled" and msg.status == "pending"
        assert msg.due_at == f.due_at and msg.group_key == f"enrollment:{enr.id}" and msg.essential is False
        assert msg.template == ("followup_checkin" if f.kind.startswith("checkin") else "followup_survey")
        assert f.expires_at > f.due_at
    # an applicant without a confirmed seat gets nothing
    assert fh.followups_of(fh.fc.applicant(s.cohort)) == {}


def test_syncing_again_changes_nothing(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    before = {k: (f.due_at, f.outbox_dedupe_key) for k, f in fh.followups_of(enr).items()}
    messages = count(OutboxMessage)
    for _ in range(2):
        result = followups.sync_cohort(s.cohort, NOW)
        assert (result.created, result.moved, result.cancelled) == (0, 0, 0)
    assert {k: (f.due_at, f.outbox_dedupe_key) for k, f in fh.followups_of(enr).items()} == before
    assert count(OutboxMessage) == messages and count(FollowUp) == 5


def test_follow_ups_move_when_the_plan_moves_and_stop_when_switched_off(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    # The last dosing session moves a day later: the plan tells its listeners (us).
    s.dosing.starts_at += timedelta(days=1)
    s.dosing.ends_at += timedelta(days=1)
    ip.notify_listeners(s.cohort, NOW)
    rows = fh.followups_of(enr)
    assert rows["checkin_24h"].due_at == DUE["checkin_24h"] + timedelta(days=1)
    assert fh.message_of(rows["checkin_24h"]).due_at == DUE["checkin_24h"] + timedelta(days=1)
    assert fh.message_of(rows["survey_month_1"]).due_at == DUE["survey_month_1"] + timedelta(days=1)

    plan = ip.ensure_plan(s.cohort, NOW)
    plan.checkin_24h = False
    ip.notify_listeners(s.cohort, NOW)
    off = fh.followups_of(enr)["checkin_24h"]
    assert off.status == "cancelled" and fh.message_of(off).status == "cancelled"

    plan.checkin_24h = True  # switched back on: a fresh message, the cancelled one stays cancelled
    old_key = off.outbox_dedupe_key
    ip.notify_listeners(s.cohort, NOW)
    back = fh.followups_of(enr)["checkin_24h"]
    assert back.status == "scheduled" and back.outbox_dedupe_key != old_key
    assert fh.message_of(back).status == "pending"


def test_due_times_are_moved_out_of_the_participants_quiet_hours(db):
    s = fh.setup()
    # 24 h after the anchor is 21:00 in Berlin (CEST): held until 08:00 Berlin time.
    berlin = fh.followups_of(fh.confirmed(s, tz="Europe/Berlin"))
    assert berlin["checkin_24h"].due_at == datetime(2026, 5, 5, 6, 0, tzinfo=UTC)
    # Tokyo: 19:00 UTC is 04:00 JST -> 08:00 JST (23:00 UTC).
    tokyo = fh.followups_of(fh.confirmed(s, tz="Asia/Tokyo"))
    assert tokyo["checkin_24h"].due_at == datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    # Denver: 13:00 local, unchanged.
    assert fh.followups_of(fh.confirmed(s))["checkin_24h"].due_at == DUE["checkin_24h"]


def test_each_follow_up_is_sent_once_even_when_sync_runs_twice(db, smtp):
    s = fh.setup()
    enr = fh.confirmed(s)
    at = DUE["checkin_24h"]
    dispatch(smtp, at)
    assert len(followup_mails(smtp)) == 2  # survey_post (16:00) and checkin_24h (19:00) are due
    followups.sync_enrollment(enr, at)
    followups.sync_cohort(s.cohort, at)
    assert dispatch(smtp, at + timedelta(minutes=5)).sent == 0
    assert len(followup_mails(smtp)) == 2
    followups.sweep_unanswered(at)
    rows = fh.followups_of(enr)
    assert rows["checkin_24h"].status == "sent" and rows["checkin_24h"].sent_at == at
    # a plan change after sending leaves the sent follow-up alone
    s.dosing.ends_at += timedelta(hours=2)
    ip.notify_listeners(s.cohort, at)
    assert fh.followups_of(enr)["checkin_24h"].status == "sent"
    assert dispatch(smtp, at + timedelta(hours=3)).sent == 0 and len(followup_mails(smtp)) == 2


def test_withdrawal_stops_the_follow_ups(db, smtp):
    s = fh.setup()
    enr = fh.confirmed(s)
    enrollment.withdraw(enr, now=NOW + timedelta(days=1), actor=None)
    rows = fh.followups_of(enr)
    assert {f.status for f in rows.values()} == {"cancelled"}
    assert {fh.message_of(f).status for f in rows.values()} == {"cancelled"}
    followups.sync_cohort(s.cohort, NOW + timedelta(days=2))  # a later plan change does not revive them
    assert {f.status for f in fh.followups_of(enr).values()} == {"cancelled"}
    dispatch(smtp, DUE["survey_month_3"])
    assert followup_mails(smtp) == []


def test_opting_out_of_non_essential_messages_stops_the_follow_ups(db, smtp):
    s = fh.setup()
    enr = fh.confirmed(s)
    enr.participant.marketing_opt_out = True  # e.g. the unsubscribe link of another email
    result = dispatch(smtp, DUE["checkin_24h"])
    assert result.cancelled == 2 and followup_mails(smtp) == []  # the dispatcher skips them
    followups.sweep_unanswered(DUE["checkin_24h"])
    rows = fh.followups_of(enr)
    assert rows["checkin_24h"].status == "cancelled" and "opted out" in rows["checkin_24h"].cancelled_reason
    followups.sync_enrollment(enr, DUE["checkin_24h"])  # the next sync cancels the rest at once
    assert {f.status for f in fh.followups_of(enr).values()} == {"cancelled"}
    dispatch(smtp, DUE["survey_month_3"])
    assert followup_mails(smtp) == []


def test_an_unanswered_72_hour_check_in_alerts_the_facilitator_once_24_hours_after_sending(db, smtp):
    s = fh.setup()
    enr = fh.confirmed(s)
    sent_at = DUE["checkin_72h"]
    dispatch(smtp, sent_at)
    followups.sweep_unanswered(sent_at)
    assert fh.followups_of(enr)["checkin_72h"].status == "sent"
    assert followups.sweep_unanswered(sent_at + timedelta(hours=23, minutes=59)) == 0
    job = scheduler.registered_jobs()["integration.sweep_unanswered"]
    assert job.func(sent_at + timedelta(hours=24)) == 1
    assert job.func(sent_at + timedelta(hours=25)) == 0  # once
    alerts = list(_db.session.scalars(select(IntegrationAlert)))
    assert [(a.reason, a.enrollment_id) for a in alerts] == [("no_response_72h", enr.id)]
    emails = list(_db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "integration_alert")))
    assert [m.recipient_user_id for m in emails] == [s.facilitator.id] and emails[0].essential
    # the 24-hour check-in, also unanswered, never raises this alert
    assert fh.followups_of(enr)["checkin_24h"].status == "sent"


def test_links_expire_and_the_sweep_records_it(db, smtp):
    s = fh.setup()
    enr = fh.confirmed(s)
    dispatch(smtp, DUE["checkin_24h"])
    f = fh.followups_of(enr)["checkin_24h"]
    followups.sweep_unanswered(f.expires_at)
    assert fh.followups_of(enr)["checkin_24h"].status == "expired"


def test_the_sweep_is_registered_and_runs_on_an_empty_database(db):
    assert "integration.sweep_unanswered" in scheduler.registered_jobs()
    assert scheduler.registered_jobs()["integration.sweep_unanswered"].func(NOW) == 0


def test_response_rates_count_what_was_sent_and_answered_per_cohort(db, smtp):
    from retreat.integration import checkins

    s = fh.setup()
    first, second = fh.confirmed(s), fh.confirmed(s)
    dispatch(smtp, DUE["checkin_24h"])  # before the sweep has recorded the sends
    checkins.answer(fh.token_of(fh.followups_of(first)["checkin_24h"]),
                    {"score": "8", "sleep": "well", "difficult": "no"}, now=DUE["checkin_24h"])
    (row,) = followups.response_rates()
    got = {k.kind: (k.answered, k.delivered, k.percent) for k in row.kinds}
    assert got == {"checkin_24h": (1, 2, 50), "survey_post": (0, 2, 0)}
    assert row.cohort.id == s.cohort.id and row.percent == 25
    assert second.id not in {a.enrollment_id for a in followups.open_alerts()}
