"""The scholarship form: finance and admins set it; others get 403; bad input is refused next to
its field and changes nothing; the price shows on the finance ledger and the participant's page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retreat.payments import ledger
from retreat.payments.models import LedgerType, PriceOverride
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting


@pytest.fixture()
def enr(db):
    c = fc.cohort(price_minor=400000, deposit_minor=50000, currency="USD")
    return fc.applicant(c)


@pytest.mark.parametrize("role", ["finance", "admin"])
def test_set_and_shown_everywhere(app, db, enr, role):
    client = signed_in(app, factories.user(role, password=None))
    url = f"/finance/enrollments/{enr.id}/scholarship"
    assert client.get(url).status_code == 200
    resp = client.post(url, data={"price": "2500.00", "reason": "Community scholarship"})
    assert resp.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "$2,500.00" in page and "Community scholarship" in page
    if role == "finance":
        ledger_page = client.get(f"/finance/payments/enrollments/{enr.id}").get_data(as_text=True)
        assert 'data-testid="scholarship"' in ledger_page and "$2,500.00" in ledger_page
    db.session.commit()
    me = signed_in(app, enr.participant)
    mine = me.get(f"/me/payments/{enr.id}").get_data(as_text=True)
    assert "Your scholarship price" in mine and "$2,500.00" in mine
    assert "Community scholarship" not in mine  # the reason is staff's


@pytest.mark.parametrize("data,status,message", [
    ({"price": "", "reason": "x"}, 422, "Scholarship price is required."),
    ({"price": "100", "reason": ""}, 422, "Reason is required."),
    ({"price": "100", "reason": "x" * 501}, 422, "Reason must be at most 500 characters"),
    ({"price": "4000.01", "reason": "x"}, 422, "between zero and the cohort"),
    ({"price": "12,34,5", "reason": "x"}, 422, "Enter a price such as"),
    ({"price": "100", "reason": "x"}, 409, "below what was already paid"),
])
def test_bad_input_changes_nothing(app, db, enr, data, status, message):
    ledger.record(enrollment_id=enr.id, entry_type=LedgerType.CHARGE, amount_minor=50000, currency="USD",
                  object_id="pi_test_sch", now=fc.NOW)
    db.session.commit()
    client = signed_in(app, factories.user("finance", password=None))
    resp = client.post(f"/finance/enrollments/{enr.id}/scholarship", data=data)
    assert resp.status_code == status
    assert message in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(PriceOverride)) == 0


@pytest.mark.parametrize("role", ["participant", "facilitator", "provider"])
def test_others_get_403(app, db, enr, role):
    client = signed_in(app, factories.user(role, password=None))
    url = f"/finance/enrollments/{enr.id}/scholarship"
    assert client.get(url).status_code == 403
    assert client.post(url, data={"price": "1", "reason": "x"}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(PriceOverride)) == 0


def test_page_statement_count_is_fixed(app, db, enr):
    client = signed_in(app, factories.user("finance", password=None))
    url = f"/finance/enrollments/{enr.id}/scholarship"
    client.get("/finance/")
    with counting() as before:
        assert client.get(url).status_code == 200
    client.post(url, data={"price": "2500.00", "reason": "Hardship"})
    with counting() as after:
        assert client.get(url).status_code == 200
    assert len(after) <= len(before) + 1 and len(after) < 25
