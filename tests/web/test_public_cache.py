"""Anonymous public reads (cohort page, cohorts API) are kept a few seconds per process; anyone
with a session, and every other page, always gets a fresh answer."""

from __future__ import annotations

import pytest

from retreat.extensions import db as _db
from retreat.web import page_cache
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in


@pytest.fixture()
def cached(app):
    app.config["PUBLIC_CACHE_SECONDS"] = 60
    page_cache.clear()
    yield
    app.config.pop("PUBLIC_CACHE_SECONDS")
    page_cache.clear()


def test_anonymous_reads_are_cached_signed_in_reads_are_live(app, db, cached):
    c = fc.cohort(capacity=12)
    _db.session.commit()
    anon = app.test_client()
    page = anon.get(f"/cohorts/{c.id}").get_data(as_text=True)
    api = anon.get(f"/api/v1/cohorts/{c.id}").get_json()
    assert api["seats_available"] == 12
    c.seats_taken = 5
    _db.session.commit()
    assert anon.get(f"/cohorts/{c.id}").get_data(as_text=True) == page  # within the cache's seconds
    assert anon.get(f"/api/v1/cohorts/{c.id}").get_json()["seats_available"] == 12
    me = signed_in(app, factories.user("participant", password=None))
    assert me.get(f"/api/v1/cohorts/{c.id}").get_json()["seats_available"] == 7  # a session: always live
    page_cache.clear()
    assert anon.get(f"/api/v1/cohorts/{c.id}").get_json()["seats_available"] == 7
    listing = anon.get("/api/v1/cohorts")
    assert listing.status_code == 200 and listing.is_json and "Set-Cookie" not in listing.headers
    assert anon.get("/api/v1/cohorts").data == listing.data


def test_not_found_is_never_cached(app, db, cached):
    c = fc.cohort(status="draft")
    _db.session.commit()
    anon = app.test_client()
    assert anon.get(f"/cohorts/{c.id}").status_code == 404
    c.status = "open"
    _db.session.commit()
    assert anon.get(f"/cohorts/{c.id}").status_code == 200
