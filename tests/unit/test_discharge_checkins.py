"""The 24 h and 72 h check-ins count from each person's own discharge (signals.participant_discharged):
moved with their pending emails, idempotent, never touching what was already sent, and only for
the cohort's last dosing session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.core import signals
from retreat.extensions import db as _db
from retreat.integration import discharge, followups
from retreat.messaging import dispatcher
from retreat.messaging.transport import transport_from_config
from tests import followup_helpers as fh
from tests.followup_helpers import DOSING_END, DUE, NOW

DISCHARGED = datetime(2026, 5, 3, 21, 30, tzinfo=UTC)  # 15:30 MDT, 2 h 30 after the session's end


def _discharge(enr, session, at=DISCHARGED, now=NOW):
    signals.participant_discharged.send(enr, cohort_session_id=session.id, discharged_at=at, actor=None, now=now)
    _db.session.flush()


def _due(enr) -> dict:
    return {k: (f.due_at, fh.message_of(f).due_at, f.status) for k, f in fh.followups_of(enr).items()}


def test_the_handler_is_connected(app):
    assert signals.participant_discharged.receivers() == [discharge._on_discharge]


def test_a_discharge_moves_both_check_ins_and_their_emails_and_nothing_else(db):
    s = fh.setup()
    enr, other = fh.confirmed(s), fh.confirmed(s)
    _discharge(enr, s.dosing)
    rows = _due(enr)
    assert rows["checkin_24h"][:2] == (DISCHARGED + timedelta(hours=24),) * 2
    assert rows["checkin_72h"][:2] == (DISCHARGED + timedelta(hours=72),) * 2
    assert fh.followups_of(enr)["checkin_24h"].expires_at == DISCHARGED + timedelta(hours=24) + followups.CHECKIN_OPEN_FOR
    assert {k: v[0] for k, v in rows.items() if k.startswith("survey")} == \
        {k: v for k, v in DUE.items() if k.startswith("survey")}
    assert {k: v[0] for k, v in _due(other).items()} == DUE  # the others still count from the session's end


def test_the_same_signal_twice_changes_nothing_the_second_time(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    _discharge(enr, s.dosing)
    before = _due(enr)
    assert discharge.record_discharge(enr, cohort_session_id=s.dosing.id, discharged_at=DISCHARGED, now=NOW) is False
    _discharge(enr, s.dosing)
    assert _due(enr) == before
    audits = _db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "integration.checkins_from_discharge"))
    assert audits == 1
    # a corrected time moves them again
    _discharge(enr, s.dosing, at=DISCHARGED + timedelta(hours=1))
    assert _due(enr)["checkin_24h"][0] == DISCHARGED + timedelta(hours=25)


def test_a_discharge_after_the_check_in_went_out_changes_nothing_sent(app, db, smtp_server):
    s = fh.setup()
    enr = fh.confirmed(s)
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    dispatcher.dispatch_due(DUE["checkin_24h"], transport=smtp_server.transport)
    sent = fh.followups_of(enr)["checkin_24h"]
    sent_msg = fh.message_of(sent)
    assert sent_msg.status == "sent"
    late = DUE["checkin_24h"] + timedelta(hours=1)  # the sign-off was recorded late
    _discharge(enr, s.dosing, at=DUE["checkin_24h"] - timedelta(minutes=30), now=late)
    rows = fh.followups_of(enr)
    assert rows["checkin_24h"].status == "sent" and rows["checkin_24h"].due_at == DUE["checkin_24h"]
    assert fh.message_of(rows["checkin_24h"]).status == "sent"
    assert fh.message_of(rows["checkin_24h"]).id == sent_msg.id
    assert rows["checkin_72h"].due_at == DUE["checkin_24h"] - timedelta(minutes=30) + timedelta(hours=72)


def test_only_the_last_dosing_session_counts(db):
    s = fh.setup()
    earlier = CohortSession(cohort_id=s.cohort.id, kind=SessionKind.DOSING.value, title="Dosing 1",
                            starts_at=DOSING_END - timedelta(days=2, hours=4), ends_at=DOSING_END - timedelta(days=2),
                            location="Lodge", video_url="", facilitator_id=s.facilitator.id)
    _db.session.add(earlier)
    _db.session.flush()
    enr = fh.confirmed(s)
    _discharge(enr, earlier, at=DOSING_END - timedelta(days=2))
    assert {k: v[0] for k, v in _due(enr).items()} == DUE
    assert followups.discharged_at(enr) is None


def test_a_later_plan_sync_keeps_the_personal_times_and_quiet_hours_still_apply(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    night = datetime(2026, 5, 4, 4, 0, tzinfo=UTC)  # 22:00 MDT: 24 h later is inside quiet hours
    _discharge(enr, s.dosing, at=night)
    followups.sync_cohort(s.cohort, NOW)
    rows = _due(enr)
    assert rows["checkin_24h"][0] == datetime(2026, 5, 5, 14, 0, tzinfo=UTC)  # 08:00 MDT
    assert rows["checkin_72h"][0] == datetime(2026, 5, 7, 14, 0, tzinfo=UTC)


def test_a_naive_discharge_time_is_refused(db):
    s = fh.setup()
    enr = fh.confirmed(s)
    with pytest.raises(ValueError):
        discharge.record_discharge(enr, cohort_session_id=s.dosing.id, discharged_at=datetime(2026, 5, 3, 21, 0),
                                   now=NOW)
