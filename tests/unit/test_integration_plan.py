"""Integration plan: the anchor, the touchpoints contract (DST and month ends), the template."""

from __future__ import annotations

from datetime import UTC, datetime

from retreat.cohorts.models import CohortSession, SessionKind
from retreat.integration import plan as ip
from tests import factories_cohorts as fc

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def _dosing(cohort, start, end):
    from retreat.extensions import db

    s = CohortSession(cohort_id=cohort.id, kind=SessionKind.DOSING.value, title="Dosing", starts_at=start,
                      ends_at=end, location="", video_url="")
    db.session.add(s)
    db.session.flush()
    return s


def test_touchpoints_follow_the_last_dosing_session_across_the_march_dst_change(db):
    c = fc.cohort(starts_at=datetime(2026, 3, 2, 16, tzinfo=UTC), ends_at=datetime(2026, 3, 9, 17, tzinfo=UTC),
                  timezone="America/Denver")
    _dosing(c, datetime(2026, 3, 4, 16, tzinfo=UTC), datetime(2026, 3, 4, 20, tzinfo=UTC))
    # Last dosing ends Sat 7 March 21:00 MST = 8 March 04:00 UTC; DST starts on 8 March at 02:00.
    _dosing(c, datetime(2026, 3, 8, 0, tzinfo=UTC), datetime(2026, 3, 8, 4, tzinfo=UTC))
    assert ip.anchor(c) == datetime(2026, 3, 8, 4, tzinfo=UTC)
    got = {t.kind: t.due_at_utc for t in ip.touchpoints(c)}
    assert got == {
        "checkin_24h": datetime(2026, 3, 9, 4, tzinfo=UTC),   # 24 elapsed hours (22:00 MDT)
        "checkin_72h": datetime(2026, 3, 11, 4, tzinfo=UTC),
        "survey_post": datetime(2026, 3, 8, 16, tzinfo=UTC),   # 10:00 MDT on the next local day
        "survey_month_1": datetime(2026, 4, 7, 16, tzinfo=UTC),
        "survey_month_3": datetime(2026, 6, 7, 16, tzinfo=UTC),
    }
    assert [t.kind for t in ip.touchpoints(c)] == list(ip.TOUCHPOINT_KINDS)
    assert all(t.due_at_utc.tzinfo is not None and t.due_at_utc.utcoffset().total_seconds() == 0
               for t in ip.touchpoints(c))


def test_without_dosing_the_anchor_is_the_last_local_evening_and_months_clamp(db):
    c = fc.cohort(starts_at=datetime(2026, 1, 25, 16, tzinfo=UTC), ends_at=datetime(2026, 1, 31, 17, tzinfo=UTC),
                  timezone="America/Denver")
    assert ip.anchor(c) == datetime(2026, 2, 1, 1, tzinfo=UTC)  # 31 Jan 18:00 MST
    got = {t.kind: t.due_at_utc for t in ip.touchpoints(c)}
    assert got["survey_post"] == datetime(2026, 2, 1, 17, tzinfo=UTC)      # 1 Feb 10:00 MST
    assert got["survey_month_1"] == datetime(2026, 2, 28, 17, tzinfo=UTC)  # 31 Jan + 1 month = 28 Feb
    assert got["survey_month_3"] == datetime(2026, 4, 30, 16, tzinfo=UTC)  # 10:00 MDT


def test_ensure_plan_uses_the_template_once_and_switched_off_touchpoints_are_left_out(db):
    c = fc.cohort(timezone="Europe/Berlin")
    plan = ip.ensure_plan(c, NOW)
    assert (plan.circle_weeks, plan.circle_weekday, plan.version) == (6, 1, 1)
    assert plan.checkin_24h and plan.checkin_72h and plan.survey_post and plan.survey_month_1 and plan.survey_month_3
    assert ip.ensure_plan(c, NOW).id == plan.id
    plan.checkin_24h = False
    plan.survey_month_3 = False
    assert [t.kind for t in ip.touchpoints(c)] == ["checkin_72h", "survey_post", "survey_month_1"]
