"""Each home panel's query, tested where it lives: what it counts, what it leaves out, and whose it is."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

from retreat.accounts import admin as admin_accounts
from retreat.accounts.models import ProviderLicense
from retreat.clinical import safety
from retreat.cohorts import readiness, team
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.consults import agenda
from retreat.consults.models import Consultation
from retreat.core.pagination import Batch
from retreat.extensions import db as _db
from retreat.finance import reconciliation_report
from retreat.integration import checkins, followups
from retreat.messaging import dispatcher
from retreat.messaging.transport import transport_from_config
from retreat.payments import attempts, balances
from retreat.payments.models import Payment, PaymentKind
from retreat.privacy import deletion, deletion_review
from retreat.timeutil import day_window
from tests import factories
from tests import followup_helpers as fh
from tests.followup_helpers import DUE, NOW


def test_the_viewers_day_is_their_own_local_day_dst_included():
    assert day_window(datetime(2026, 3, 8, 12, tzinfo=UTC), "America/Denver") == (
        datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 9, 6, tzinfo=UTC))  # 23 hours: spring forward
    assert day_window(datetime(2026, 3, 9, 3, tzinfo=UTC), "America/Denver")[0] == datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert day_window(datetime(2026, 3, 9, 3, tzinfo=UTC), "Europe/Berlin")[0] == datetime(2026, 3, 8, 23, tzinfo=UTC)


def test_todays_sessions_are_the_facilitators_own_cohorts_only(db):
    a, b = fh.setup(), fh.setup()
    start, end = day_window(fh.DOSING_END, a.facilitator.tz)
    mine = team.sessions_between(a.facilitator, start, end)
    assert [s.id for s in mine.items] == [a.dosing.id] and mine.total == 1
    assert [s.id for s in team.sessions_between(b.facilitator, start, end).items] == [b.dosing.id]
    tomorrow = team.sessions_between(a.facilitator, end, end + timedelta(days=1))
    assert tomorrow.total == 0 and tomorrow.items == []
    assert team.sessions_between(factories.user("admin", password=None), start, end).total == 2


def _consult(fac, start, status="booked"):
    c = Consultation(calendar_uid=secrets.token_hex(8), facilitator_id=fac.id, start_at=start,
                     end_at=start + timedelta(minutes=30), blocked_start=start, blocked_end=start + timedelta(minutes=30),
                     status=status, guest_name="Gale Guest", guest_email="gale@example.com")
    _db.session.add(c)
    _db.session.flush()
    return c


def test_todays_consults_are_booked_ones_of_that_facilitator(db):
    fac, other = factories.user("facilitator", password=None), factories.user("facilitator", password=None)
    start, end = day_window(NOW, fac.tz)
    ok = _consult(fac, start + timedelta(hours=15))
    _consult(fac, start + timedelta(hours=16), status="cancelled")
    _consult(fac, end + timedelta(hours=1))
    _consult(other, start + timedelta(hours=15))
    batch = agenda.booked_between(fac.id, start, end)
    assert [c.id for c in batch.items] == [ok.id] and batch.total == 1


def test_unacknowledged_alerts_are_those_of_the_viewers_cohorts(db):
    a, b = fh.setup(), fh.setup()
    enr = fh.confirmed(a)
    alert = safety.raise_safety_alert(enr, now=NOW)
    [ia] = followups.raise_alerts(enr, fh.followups_of(enr)["checkin_24h"], ["reach_out"], now=NOW)
    assert [x.id for x in safety.unacknowledged(a.facilitator).items] == [alert.id]
    assert [x.id for x in followups.unacknowledged(a.facilitator).items] == [ia.id]
    assert safety.unacknowledged(b.facilitator).total == 0 and followups.unacknowledged(b.facilitator).total == 0
    followups.acknowledge(ia.id, a.facilitator, now=NOW)
    assert followups.unacknowledged(a.facilitator).total == 0


def test_overdue_check_ins_are_sent_a_day_ago_unanswered_and_still_open(app, db, smtp_server):
    a, b = fh.setup(), fh.setup()
    late, answered, elsewhere = fh.confirmed(a), fh.confirmed(a), fh.confirmed(b)
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    sent = DUE["checkin_24h"]
    dispatcher.dispatch_due(sent, transport=smtp_server.transport)
    followups.sweep_unanswered(sent)
    checkins.answer(fh.token_of(fh.followups_of(answered)["checkin_24h"]),
                    {"score": "7", "sleep": "well", "difficult": "no"}, now=sent + timedelta(hours=1))
    assert followups.overdue_checkins(a.facilitator, sent + timedelta(hours=23)).total == 0
    batch = followups.overdue_checkins(a.facilitator, sent + timedelta(hours=25))
    assert [f.enrollment_id for f in batch.items] == [late.id]
    assert [f.enrollment_id for f in followups.overdue_checkins(b.facilitator, sent + timedelta(hours=25)).items] \
        == [elsewhere.id]
    assert followups.overdue_checkins(a.facilitator, sent + followups.CHECKIN_OPEN_FOR).total == 0  # link expired


def test_the_readiness_panel_is_absent_until_a_rule_registers():
    from retreat.clinical import dosing_board

    viewer = type("V", (), {"id": 1, "role": "facilitator", "email": "", "name": "", "tz": "UTC"})()
    readiness.unregister(dosing_board.not_ready_panel)  # the dosing-day rules' source, registered at import
    try:
        _absent_until_registered(viewer)
    finally:
        readiness.register(dosing_board.not_ready_panel)


def _absent_until_registered(viewer):
    assert readiness.not_ready(viewer, NOW) is None
    row = readiness.NotReady(enrollment_id=1, participant_name="Pat", cohort_title="Spring",
                             session_starts_at=NOW, missing=("ride home",), url="/facilitator/enrollments/1")

    def source(actor, now):
        return Batch(items=[row], total=3)

    readiness.register(source)
    readiness.register(source)  # once
    try:
        got = readiness.not_ready(viewer, NOW)
        assert got.items == [row] and got.total == 3
    finally:
        readiness.unregister(source)
    assert readiness.not_ready(viewer, NOW) is None


def test_next_dosing_day_of_the_organisation(db):
    org, other = factories.provider_org(), factories.provider_org()
    s = fh.setup(provider_organization_id=org.id)
    fh.setup(provider_organization_id=other.id, dosing_end=fh.DOSING_END - timedelta(days=1))
    later = CohortSession(cohort_id=s.cohort.id, kind=SessionKind.DOSING.value, title="Dosing 2",
                          starts_at=fh.DOSING_END + timedelta(days=1), ends_at=fh.DOSING_END + timedelta(days=1, hours=4),
                          location="", video_url="")
    _db.session.add(later)
    _db.session.flush()
    assert team.next_dosing_session(org.id, NOW).id == s.dosing.id
    assert team.next_dosing_session(org.id, fh.DOSING_END).id == later.id  # the first one has ended
    assert team.next_dosing_session(org.id, fh.DOSING_END + timedelta(days=2)) is None
    assert team.next_dosing_session(None, NOW) is None
    fh.confirmed(s)
    assert team.confirmed_count(s.cohort.id) == 1


def test_failed_payments_leave_the_panel_once_a_later_attempt_succeeds(db):
    s = fh.setup()
    enr, other = fh.confirmed(s), fh.confirmed(s)

    def attempt(e, n, status, kind=PaymentKind.BALANCE):
        p = Payment(enrollment_id=e.id, kind=kind.value, attempt=n, amount_minor=1000, currency="USD", status=status,
                    idempotency_key=f"t-{e.id}-{kind.value}-{n}", created_at=NOW, updated_at=NOW)
        _db.session.add(p)
        _db.session.flush()
        return p

    failed = attempt(enr, 1, "failed")
    attempt(other, 1, "failed")
    attempt(other, 2, "succeeded")
    batch = attempts.failed_unrecovered(NOW + timedelta(days=1))
    assert [p.id for p in batch.items] == [failed.id]
    assert attempts.failed_unrecovered(NOW + timedelta(days=31)).total == 0  # older than the window


def test_most_overdue_orders_by_the_oldest_overdue_amount():
    def row(i, overdue_on):
        r = type("R", (), {})()
        r.enrollment_id, r.overdue, r.oldest_overdue = i, 100 if overdue_on else 0, overdue_on
        return r

    rows = [row(1, date(2026, 5, 1)), row(2, None), row(3, date(2026, 4, 1))]
    batch = balances.most_overdue(rows, limit=1)
    assert [r.enrollment_id for r in batch.items] == [3] and batch.total == 2 and batch.more == 1


def test_licences_expiring_within_60_days_of_active_providers(db):
    today = date(2026, 3, 1)
    org = factories.provider_org()
    p = factories.user("provider", org=org, password=None)
    gone = factories.user("provider", org=org, password=None)
    gone.is_active_account = False
    for user, days in ((p, 60), (p, 61), (p, -1), (gone, 10)):
        _db.session.add(ProviderLicense(user_id=user.id, number=f"L{days}", state="CO", kind="MD",
                                        expires_on=today + timedelta(days=days)))
    _db.session.flush()
    batch = admin_accounts.licenses_expiring(today, within_days=60)
    assert [lic.number for lic in batch.items] == ["L60"]


def test_open_deletion_requests_and_an_empty_reconciliation(db):
    assert deletion_review.open_requests().total == 0
    person = factories.user("participant", password=None)
    deletion.request_deletion(person, reason="please", now=NOW)
    batch = deletion_review.open_requests()
    assert batch.total == 1 and batch.items[0].participant_id == person.id
    assert reconciliation_report.open_items_of_last_run() == (None, Batch(items=[], total=0))
