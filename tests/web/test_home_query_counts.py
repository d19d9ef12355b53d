"""Each role's home costs the same number of SQL statements with a few and with many rows behind
each panel (no query per row). The figures are printed for the report."""

from __future__ import annotations

import secrets
from datetime import timedelta

from retreat.accounts.models import ProviderLicense
from retreat.clinical.models import SafetyAlert
from retreat.cohorts.models import CohortSession, SessionKind
from retreat.consults.models import Consultation
from retreat.extensions import db as _db
from retreat.integration.followup_models import IntegrationAlert
from retreat.models import DeletionRequest, OutboxMessage, Payment
from retreat.timeutil import day_window, now_utc
from tests import factories
from tests import followup_helpers as fh
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting

HOMES = {"facilitator": "/facilitator/", "provider": "/provider/", "finance": "/finance/", "admin": "/admin/"}


def _grow(n: int, *, s, org, fac, offset: int) -> None:
    """``n`` more rows behind every panel of every home."""
    now = now_utc().replace(microsecond=0)
    day, _ = day_window(now, fac.tz)  # sessions and consults on the facilitator's own today
    base = factories.n() * 1000
    enrs = [fh.confirmed(s, now=now - timedelta(days=40), email=f"h{base + i}@example.com") for i in range(n)]
    for e in enrs:
        follow = fh.followups_of(e)
        f = follow["checkin_24h"]
        f.status, f.sent_at, f.expires_at = "sent", now - timedelta(hours=30), now + timedelta(days=3)
        _db.session.add(SafetyAlert(enrollment_id=e.id, cohort_id=s.cohort.id, organization_id=org.id, status="open",
                                    raised_at=now - timedelta(hours=1)))
        _db.session.add(IntegrationAlert(enrollment_id=e.id, cohort_id=s.cohort.id, follow_up_id=f.id,
                                         reason="reach_out"))
        _db.session.add(Payment(enrollment_id=e.id, kind="balance", attempt=1, amount_minor=100, currency="USD",
                                status="failed", idempotency_key=f"hq-{e.id}", created_at=now, updated_at=now))
        _db.session.add(DeletionRequest(participant_id=e.participant_id, status="open", requested_at=now,
                                        last_requested_at=now, times_requested=1))
    for i in range(n):
        _db.session.add(CohortSession(cohort_id=s.cohort.id, kind=SessionKind.IFS.value, title=f"Session {i}",
                                      starts_at=day + timedelta(minutes=offset + i),
                                      ends_at=day + timedelta(minutes=offset + i + 30),
                                      location="Lodge", video_url="", facilitator_id=fac.id))
        start = day + timedelta(minutes=2 * (offset + i))
        _db.session.add(Consultation(calendar_uid=secrets.token_hex(8), facilitator_id=fac.id, start_at=start,
                                     end_at=start + timedelta(minutes=1), blocked_start=start,
                                     blocked_end=start + timedelta(minutes=1), status="booked",
                                     guest_name=f"Guest {i}", guest_email=f"g{base + i}@example.com"))
        _db.session.add(OutboxMessage(dedupe_key=f"hq-{base + i}", recipient_email=f"m{base + i}@example.com",
                                      recipient_tz="UTC", template="integration_alert", context={}, essential=True,
                                      due_at=now, next_attempt_at=now, status="failed", attempts=6, last_error="550"))
        provider = factories.user("provider", org=org, password=None)
        _db.session.add(ProviderLicense(user_id=provider.id, number=f"HQ{base + i}", state="CO", kind="MD",
                                        expires_on=(now + timedelta(days=30)).date()))
    _db.session.flush()


def _measure(app, people) -> dict[str, int]:
    out = {}
    for role, path in HOMES.items():
        client = signed_in(app, people[role])
        client.get(path)  # the session's first request does one-time work
        with counting() as statements:
            resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[-400:])
        out[role] = len(statements)
    return out


def test_each_home_costs_the_same_with_2_and_40_rows_per_panel(app, db):
    now = now_utc().replace(microsecond=0)
    org = factories.provider_org()
    s = fh.setup(dosing_end=now + timedelta(days=2), provider_organization_id=org.id, capacity=100)
    people = {"facilitator": s.facilitator, "provider": factories.user("provider", org=org, password=None),
              "finance": factories.user("finance", password=None), "admin": factories.user("admin", password=None)}
    _grow(2, s=s, org=org, fac=s.facilitator, offset=0)
    _db.session.commit()
    small = _measure(app, people)
    page = signed_in(app, s.facilitator).get("/facilitator/").get_data(as_text=True)
    assert 'data-testid="today-consults-count">2<' in page
    _grow(40, s=s, org=org, fac=s.facilitator, offset=10)
    _db.session.commit()
    large = _measure(app, people)
    print("home statements:", small)
    assert large == small
    page = signed_in(app, s.facilitator).get("/facilitator/").get_data(as_text=True)
    assert 'data-testid="today-consults-count">42<' in page and 'data-testid="overdue-checkins-count">42<' in page
    assert "and 37 more." in page
