"""The cohort form's refund tiers: five rows (blanks ignored), validated with a message and nothing
saved; the public cohort page and the participant's page show the text written from the tiers; a
participant who applied earlier keeps the old tiers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retreat.extensions import db as _db
from retreat.payments import refund_policy
from retreat.timeutil import now_utc, to_local
from tests import factories_cohorts as fc
from tests.conftest import signed_in


def _data(c, **tiers):
    start = to_local(c.starts_at, c.timezone).strftime("%Y-%m-%dT%H:%M")
    end = to_local(c.ends_at, c.timezone).strftime("%Y-%m-%dT%H:%M")
    data = {"title": c.title, "timezone": c.timezone, "starts_at": start, "ends_at": end, "capacity": str(c.capacity),
            "currency": c.currency, "price": "4000", "deposit": "500", "deposit_timing": c.deposit_timing,
            "provider_organization_id": str(c.provider_organization_id or 0), "hold_minutes": "30",
            "offer_hours": "48", "refund_policy": ""}
    for i in range(5):
        data[f"tiers-{i}-days"], data[f"tiers-{i}-percent"] = "", ""
    data.update(tiers)
    return data


@pytest.fixture()
def cohort(db):
    return fc.cohort(starts_at=now_utc() + timedelta(days=120), price_minor=400000, deposit_minor=50000)


@pytest.mark.parametrize("tiers,message", [
    ({}, "Enter at least one refund tier."),
    ({"tiers-0-days": "60", "tiers-0-percent": "100", "tiers-1-days": "60", "tiers-1-percent": "50"},
     "same number of days (60)"),
    ({"tiers-0-days": "60", "tiers-0-percent": "50", "tiers-1-days": "30", "tiers-1-percent": "80"},
     "Withdrawing earlier never refunds less"),
    ({"tiers-0-days": "60", "tiers-0-percent": "150"}, "between 0 and 100"),
    ({"tiers-0-days": "60", "tiers-0-percent": "100", "refund_policy": "We refund 75% always"},
     "Leave percentages out of the notes"),
])
def test_bad_tiers_are_refused_and_nothing_changes(make_client, db, cohort, tiers, message):
    admin = make_client("admin")
    before = refund_policy.schedule(cohort)
    r = admin.post(f"/facilitator/cohorts/{cohort.id}/edit", data=_data(cohort, **tiers))
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    _db.session.expire_all()
    assert refund_policy.schedule(cohort) == before


def test_tiers_saved_shown_as_text_and_earlier_applicants_keep_theirs(app, make_client, db, cohort):
    early = fc.applicant(cohort, now=now_utc())
    _db.session.commit()
    f = make_client("facilitator")
    page = f.get(f"/facilitator/cohorts/{cohort.id}/edit").get_data(as_text=True)
    assert 'name="tiers-0-days"' in page and 'value="60"' in page and 'value="50"' in page
    r = f.post(f"/facilitator/cohorts/{cohort.id}/edit", data=_data(
        cohort, **{"tiers-0-days": "14", "tiers-0-percent": "25", "tiers-2-days": "90", "tiers-2-percent": "100"}))
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    _db.session.expire_all()
    assert refund_policy.schedule(cohort) == [(90, 100), (14, 25)]
    text = refund_policy.policy_text([(90, 100), (14, 25)])
    public = app.test_client().get(f"/cohorts/{cohort.id}")
    assert public.status_code == 200 and text in public.get_data(as_text=True)
    mine = signed_in(app, early.participant).get(f"/me/enrollments/{early.id}").get_data(as_text=True)
    assert refund_policy.policy_text([(60, 100), (30, 50)]) in mine and text not in mine
    assert refund_policy.policy_percent_for(early, cohort.starts_at - timedelta(days=40)) == 50


def test_old_free_text_with_percentages_is_not_shown_and_does_not_block_editing(app, make_client, db, cohort):
    cohort.refund_policy = "Full refund until 60 days before the start, 50% until 30 days, none after."
    _db.session.commit()
    public = app.test_client().get(f"/cohorts/{cohort.id}").get_data(as_text=True)
    assert "50% until 30 days" not in public and refund_policy.policy_text([(60, 100), (30, 50)]) in public
    admin = make_client("admin")
    page = admin.get(f"/facilitator/cohorts/{cohort.id}/edit").get_data(as_text=True)
    assert "no longer shown to participants" in page
    data = _data(cohort, **{"tiers-0-days": "60", "tiers-0-percent": "100"})
    assert admin.post(f"/facilitator/cohorts/{cohort.id}/edit", data=data).status_code == 302
