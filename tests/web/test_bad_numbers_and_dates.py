"""Numbers past a column's range and far dates are field errors (issue #16, items 9 and 10).

One bound for each: ``retreat.database.INT_MAX`` (every number typed into a form or JSON, and
every id sent as text: ``parse_id``) and ``retreat.timeutil.EARLIEST_YEAR..LATEST_YEAR`` (every
date and time typed), applied by the shared fields of ``retreat.web.forms``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import wtforms
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from retreat.cohorts.models import Cohort, CohortSession
from retreat.database import INT_MAX, parse_id
from retreat.integration import plan as ip
from retreat.timeutil import now_utc
from retreat.web import forms as shared
from tests import factories
from tests import factories_cohorts as fc
from tests.web.html_forms import parse


def _all_form_classes():
    seen, todo = set(), list(FlaskForm.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo += cls.__subclasses__()
    return [c for c in seen if c.__module__.startswith("retreat.")]


def test_every_number_and_date_field_of_the_app_is_a_bounded_one(app):
    raw = (wtforms.IntegerField, wtforms.DecimalField, wtforms.FloatField, wtforms.DateField,
           wtforms.DateTimeField, wtforms.DateTimeLocalField, wtforms.TimeField, wtforms.MonthField)
    ours = (shared.IntegerField, shared.DateField, shared.DateTimeLocalField)
    checked = 0
    for cls in _all_form_classes():
        for name in dir(cls):
            unbound = getattr(cls, name, None)
            field_class = getattr(unbound, "field_class", None)
            if isinstance(field_class, type) and issubclass(field_class, raw):
                checked += 1
                assert issubclass(field_class, ours), f"{cls.__module__}.{cls.__name__}.{name}: use retreat.web.forms"
    assert checked > 15


def test_parse_id_refuses_what_no_integer_column_holds():
    assert parse_id("12") == 12 and parse_id(f" {INT_MAX} ") == INT_MAX
    for bad in ("", None, "0", "-1", str(INT_MAX + 1), "154407627684127", "1e3", "²", "١٢", "12a"):
        assert parse_id(bad) is None, bad


@pytest.fixture()
def world(db, make_client):
    f = make_client("facilitator")
    retreat = fc.retreat()
    org = factories.provider_org()
    db.session.commit()
    page = f.get(f"/facilitator/retreats/{retreat.id}/cohorts/new")
    shown = next(x for x in parse(page.get_data(as_text=True), "http://localhost/")[1] if "capacity" in x.kinds)
    start, end = now_utc() + timedelta(days=90), now_utc() + timedelta(days=96)
    form = {**dict(shown.fields), "title": "June cohort", "timezone": "America/Denver",
            "starts_at": start.strftime("%Y-%m-%dT10:00"), "ends_at": end.strftime("%Y-%m-%dT14:00"),
            "capacity": "12", "price": "4,500", "deposit": "500.00", "provider_organization_id": str(org.id)}
    assert f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data={**form, "title": ""}).status_code == 422
    return f, retreat, form


def _count(db, model):
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("price", ["2147483648", "21474837", "1e20", "1e309", "99999999999999999999999"])
def test_cohort_price_past_the_column_is_a_field_error(db, world, price):
    f, retreat, form = world
    r = f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data={**form, "price": price})
    assert r.status_code == 422, r.status_code
    assert _count(db, Cohort) == 0


@pytest.mark.parametrize("field", ["capacity", "hold_minutes", "offer_hours"])
def test_cohort_integers_past_the_column_are_field_errors(db, world, field):
    f, retreat, form = world
    r = f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data={**form, field: str(2**63)})
    assert r.status_code == 422 and _count(db, Cohort) == 0


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59", "0001-01-01T00:00", "1999-12-31T23:59"])
def test_far_dates_in_the_cohort_form_are_field_errors(db, world, field, value):
    f, retreat, form = world
    r = f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data={**form, field: value})
    assert r.status_code == 422 and b"between 2000 and 2100" in r.data
    assert _count(db, Cohort) == 0


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_far_dates_in_the_session_form_are_field_errors(db, make_client, field):
    f = make_client("facilitator")
    cohort = fc.cohort(status="draft")
    db.session.commit()
    start = (now_utc() + timedelta(days=90)).strftime("%Y-%m-%dT10:00")
    data = {"kind": "dosing", "title": "Dosing", "starts_at": start, "ends_at": start[:-5] + "12:00",
            "location": "Main hall", "video_url": "", "facilitator_id": "0", field: "9999-12-31T23:59"}
    before = _count(db, CohortSession)
    r = f.post(f"/facilitator/cohorts/{cohort.id}/sessions", data=data, follow_redirects=True)
    assert r.status_code < 500 and b"between 2000 and 2100" in r.data
    assert _count(db, CohortSession) == before


@pytest.mark.parametrize("fac_id", [str(INT_MAX + 1), "154407627684127", "99999999999999999999"])
def test_integration_plan_facilitator_id_past_the_column_is_a_field_error(db, make_client, fac_id):
    f = make_client("facilitator")
    start = now_utc().replace(microsecond=0) + timedelta(days=20)
    cohort = fc.cohort(starts_at=start, ends_at=start + timedelta(days=5), timezone="America/Denver")
    db.session.commit()
    assert f.get(f"/facilitator/cohorts/{cohort.id}/integration").status_code == 200
    plan = ip.ensure_plan(cohort, now_utc())
    db.session.commit()
    data = {"version": str(plan.version), "circle_weeks": "3", "circle_weekday": "2", "circle_local_time": "18:00",
            "circle_duration_minutes": "90", "circle_location": "Studio", "circle_video_url": "",
            "circle_facilitator_id": fac_id}
    r = f.post(f"/facilitator/cohorts/{cohort.id}/integration", data=data)
    assert r.status_code == 422 and b"Choose a facilitator from the list" in r.data
    db.session.expire_all()
    assert ip.ensure_plan(cohort, now_utc()).circle_weeks == plan.circle_weeks


def test_the_cohort_form_these_tests_mutate_is_valid_as_is(db, world):
    f, retreat, form = world
    assert f.post(f"/facilitator/retreats/{retreat.id}/cohorts/new", data=form).status_code == 302
    assert _count(db, Cohort) == 1
