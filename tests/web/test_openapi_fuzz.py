"""Schemathesis over the app's own OpenAPI document (issue #16, 26; invariant 7).

Every operation, anonymous and with staff API tokens (an admin's and a provider's, whose
organisation has a clearance request), gets generated requests; the answers must never be a
5xx and must match the document (status, content type, body schema). Bounded: 15 examples per
operation and phase, derandomized, no deadline, no example database; the whole file runs in
well under a minute (the coverage phase is off: see _config).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from retreat import create_app
from retreat.accounts import api_tokens
from retreat.models import CohortSession
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_clearance as fcl
from tests import finance_helpers as fh
from tests.conftest import base_config
from tests.unit.test_consult_support import around_the_clock_facilitator, book

CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ_SETTINGS = settings(max_examples=15, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


def _config() -> SchemathesisConfig:
    # Explicit, so that no schemathesis.toml found in a parent directory changes the run.
    # The coverage phase is off: it tries every value of an enum, and the time-zone enum has ~600.
    return SchemathesisConfig.from_dict({"seed": 16026, "generation": {"max-examples": 15},
                                         "phases": {"coverage": {"enabled": False}}})


@pytest.fixture()
def fuzz_world(app, db):
    """Something to read: an open cohort with a referred participant, and staff tokens."""
    setup = fcl.setup()
    fcl.submit(setup)
    _t, admin_raw = api_tokens.create_token(factories.user(role="admin", password=None), name="fuzz")
    _t, provider_raw = api_tokens.create_token(setup.provider, name="fuzz")
    _t, finance_raw = api_tokens.create_token(factories.user(role="finance", password=None), name="fuzz")
    fh.seated(fh.cohort())  # money to read: a deposit with its receipt
    fac = around_the_clock_facilitator()  # consults to list, cancel and move; a cohort on the team
    book(datetime.combine((now_utc() + timedelta(days=5)).date(), time(15), UTC), now=now_utc(), facilitator_id=fac.id)
    db.session.add(CohortSession(cohort_id=setup.cohort.id, kind="orientation", title="Orientation",
                                 facilitator_id=fac.id, starts_at=setup.cohort.starts_at,
                                 ends_at=setup.cohort.starts_at + timedelta(hours=2)))
    _t, facilitator_raw = api_tokens.create_token(fac, name="fuzz")
    db.session.commit()
    return {"admin": {"Authorization": f"Bearer {admin_raw}"},
            "facilitator": {"Authorization": f"Bearer {facilitator_raw}"},
            "provider": {"Authorization": f"Bearer {provider_raw}"},
            "finance": {"Authorization": f"Bearer {finance_raw}"}}


def _spec() -> dict:
    # The document as the app serves it. Read from an app of its own at collection time: the
    # lazy loader (schemathesis.pytest.from_fixture) does not work with pytest 9 (node._nodeid).
    spec_app = create_app(base_config())
    return spec_app.test_client().get("/api/v1/openapi.json").get_json()


schema = schemathesis.openapi.from_dict(_spec(), config=_config())


def _call(case, app, headers=None):
    case.call_and_validate(app=app, headers=headers, checks=CHECKS)  # the test app, in its rolled-back transaction


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_anonymous(case, app, fuzz_world):
    _call(case, app)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_admin_token(case, app, fuzz_world):
    _call(case, app, fuzz_world["admin"])


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_provider_token(case, app, fuzz_world):
    _call(case, app, fuzz_world["provider"])


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_facilitator_token(case, app, fuzz_world):
    """The staff operations (consultations, cohorts, enrollments, rosters) with a facilitator's token."""
    _call(case, app, fuzz_world["facilitator"])


@schema.include(path_regex=r"^/api/v1/(ledger-entries|payments)$").parametrize()
@FUZZ_SETTINGS
def test_api_finance_token(case, app, fuzz_world):
    """The finance read API with a finance token over data (issue #18 item 8)."""
    _call(case, app, fuzz_world["finance"])


@pytest.mark.parametrize("too_big", [2**31, 2**63, 154407627684127])
@pytest.mark.parametrize("path", ["/api/v1/cohorts/{}", "/api/v1/clearance-requests/{}", "/api/v1/tokens/{}"])
def test_oversized_path_ids_are_not_found(app, client, fuzz_world, path, too_big):
    """Issue #16, item 9: the app's int converter matches only an Integer column's range."""
    method = client.delete if path.startswith("/api/v1/tokens") else client.get
    headers = fuzz_world["admin"] if "tokens" in path else fuzz_world["provider"]
    assert method(path.format(too_big), headers=headers).status_code == 404
