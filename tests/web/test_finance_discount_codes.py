"""/finance/discount-codes: finance and admins list, create, edit and deactivate codes; errors name
their field and save nothing; a participant then redeems the code; the list costs a fixed number of
SQL statements."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.payments import discounts, pricing
from retreat.payments.models import DiscountCode
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import signed_in
from tests.web.test_finance_query_counts import counting

BASE = "/finance/discount-codes"


def _form(**kw):
    data = {"code": "nurse15", "description": "Healthcare professionals", "kind": "percent", "percent": "15",
            "amount": "", "currency": "", "valid_from": "", "valid_until": "", "max_uses": "",
            "per_person_limit": ""}
    data.update(kw)
    return data


@pytest.mark.parametrize("role", ["finance", "admin"])
def test_finance_and_admin_create_edit_and_deactivate(app, db, role):
    c = fc.cohort(currency="USD")
    client = signed_in(app, factories.user(role, password=None))
    assert client.get(BASE).status_code == 200
    assert client.get(BASE + "/new").status_code == 200
    resp = client.post(BASE + "/new", data=_form(cohorts=[str(c.id)], max_uses="10", per_person_limit="1",
                                               healthcare="y"))
    assert resp.status_code == 302, resp.get_data(as_text=True)[-800:]
    code = db.session.scalar(select(DiscountCode))
    assert (code.code, code.percent, code.max_uses, code.per_person_limit, code.requires_approval) == \
        ("NURSE15", 15, 10, 1, True)
    assert [x.id for x in code.cohorts] == [c.id]
    page = client.get(BASE).get_data(as_text=True)
    assert "NURSE15" in page and "healthcare professional" in page and "15 %" in page
    edit = client.get(f"{BASE}/{code.id}").get_data(as_text=True)
    assert 'value="NURSE15"' in edit
    resp = client.post(f"{BASE}/{code.id}", data=_form(code="NURSE15", kind="fixed", percent="", amount="150.00",
                                                      currency="USD", cohorts=[str(c.id)]))
    assert resp.status_code == 302
    db.session.expire_all()
    code = db.session.get(DiscountCode, code.id)
    assert (code.kind, code.amount_minor, code.currency, code.percent) == ("fixed", 15000, "USD", None)
    assert client.post(f"{BASE}/{code.id}/deactivate").status_code == 302
    db.session.expire_all()
    assert not db.session.get(DiscountCode, code.id).is_active
    assert "Inactive" in client.get(BASE).get_data(as_text=True)
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "discount_code")))
    assert actions == {"payments.discount_code_created", "payments.discount_code_updated",
                       "payments.discount_code_deactivated"}


@pytest.mark.parametrize("data,message", [
    (_form(code=""), "Code is required."),
    (_form(percent="0"), "Percentage must be between 1 and 100."),
    (_form(percent="150"), "Percentage must be between 1 and 100."),
    (_form(kind="fixed", percent="", amount="abc", currency="USD"), "Enter an amount such as 150.00"),
    (_form(kind="fixed", percent="", amount="10", currency=""), "Currency is required"),
    (_form(code="X" * 41), "Code must be at most 40 characters"),
    (_form(valid_from="2027-01-02", valid_until="2027-01-01"), "Valid until must be on or after valid from."),
    (_form(max_uses="-1"), "Total limit must be between 1"),
    (_form(valid_from="not-a-date"), "Not a valid date value."),
    (_form(cohorts=["999999"]), "Choose cohorts from the list."),
])
def test_bad_input_is_refused_next_to_its_field_and_saves_nothing(app, db, data, message):
    client = signed_in(app, factories.user("finance", password=None))
    resp = client.post(BASE + "/new", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(DiscountCode)) == 0


def test_a_duplicate_in_other_case_is_refused_and_submitting_twice_makes_one_code(app, db):
    client = signed_in(app, factories.user("finance", password=None))
    assert client.post(BASE + "/new", data=_form()).status_code == 302
    resp = client.post(BASE + "/new", data=_form(code="Nurse15"))
    assert resp.status_code == 422 and "already exists" in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(DiscountCode)) == 1


@pytest.mark.parametrize("role", ["participant", "facilitator", "provider"])
def test_everyone_else_gets_403(app, db, role):
    client = signed_in(app, factories.user(role, password=None))
    assert client.get(BASE).status_code == 403
    assert client.post(BASE + "/new", data=_form()).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(DiscountCode)) == 0


def test_a_code_finance_made_is_redeemed_by_a_participant_on_the_payments_page(app, db):
    c = fc.cohort(currency="USD", price_minor=400000)
    finance = signed_in(app, factories.user("finance", password=None))
    assert finance.post(BASE + "/new", data=_form(percent="10")).status_code == 302
    enr = fc.applicant(c)
    pricing.redeem_code(enr, "nurse15", now=fc.NOW, actor=enr.participant)
    assert pricing.quote(enr).discount == 40000
    db.session.commit()
    assert '<td data-testid="uses">1</td>' in finance.get(BASE).get_data(as_text=True)


def test_list_statement_count_does_not_grow_with_codes(app, db):
    client = signed_in(app, factories.user("finance", password=None))
    cohorts = [fc.cohort() for _ in range(3)]
    actor = factories.user("finance", password=None)

    def add(n):
        for i in range(n):
            code = discounts.save_code(None, discounts.CodeInput(code=f"C{len(discounts.listing())}X{i}",
                                                                 kind="percent", percent=5,
                                                                 cohort_ids=[cohorts[i % 3].id]),
                                       now=fc.NOW, actor=actor)
            pricing.redeem_code(fc.applicant(cohorts[i % 3]), code.code, now=fc.NOW, actor=None)
        db.session.commit()

    client.get("/finance/")
    add(2)
    with counting() as few:
        assert client.get(BASE).status_code == 200
    add(12)
    with counting() as many:
        assert client.get(BASE).status_code == 200
    assert len(many) == len(few)
