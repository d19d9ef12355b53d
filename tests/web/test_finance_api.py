"""The finance read API (issue #18 item 8): ledger entries and payments for finance and admin
tokens only; filters by date, cohort and kind; opaque cursor pages in (created_at, id) order;
bad filters answer 400 with field errors; a page costs the same statements whatever its size."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retreat.accounts import api_tokens
from retreat.extensions import db as _db
from retreat.payments.models import LedgerType
from tests import factories
from tests import finance_helpers as fh
from tests.web.test_finance_query_counts import counting

NOW = fh.NOW


def _token(role: str) -> dict:
    _t, raw = api_tokens.create_token(factories.user(role, password=None), name="t")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture()
def world(db):
    a, b = fh.cohort(), fh.cohort()
    enr_a = fh.seated(a, at=NOW)  # deposit charge, 2026-03-10
    p = fh.pay(enr_a, 100000, at=NOW + timedelta(days=20))  # balance, 2026-03-30
    fh.entry(enr_a, LedgerType.REFUND, -5000, payment=p, at=NOW + timedelta(days=21))
    enr_b = fh.seated(b, at=NOW + timedelta(days=40))  # 2026-04-19
    _db.session.commit()
    return {"a": a, "b": b, "enr_a": enr_a, "enr_b": enr_b, "finance": _token("finance")}


def _all_pages(client, path, headers, **params):
    items, cursor, pages = [], None, 0
    while True:
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        r = client.get(path, query_string=q, headers=headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_ledger_entries_filter_and_page_in_stable_order(client, world):
    h = world["finance"]
    items, pages = _all_pages(client, "/api/v1/ledger-entries", h, limit=1)
    assert pages == len(items) == 4
    assert [(i["kind"], i["amount_minor"]) for i in items] == [("charge", 50000), ("charge", 100000),
                                                               ("refund", -5000), ("charge", 50000)]
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys)
    assert items[0]["document_number"].startswith("R-2026-") and items[2]["document_number"].startswith("C-2026-")
    cohort_a, _ = _all_pages(client, "/api/v1/ledger-entries", h, cohort=world["a"].id)
    assert {i["cohort_id"] for i in cohort_a} == {world["a"].id} and len(cohort_a) == 3
    refunds, _ = _all_pages(client, "/api/v1/ledger-entries", h, kind="refund")
    assert [i["amount_minor"] for i in refunds] == [-5000]
    march, _ = _all_pages(client, "/api/v1/ledger-entries", h, **{"from": "2026-03-11", "to": "2026-03-31"})
    assert [i["amount_minor"] for i in march] == [100000, -5000]


def test_payments_filter_and_page(client, world):
    h = world["finance"]
    items, pages = _all_pages(client, "/api/v1/payments", h, limit=2)
    assert pages == 2 and [i["kind"] for i in items] == ["deposit", "balance", "deposit"]
    assert all(i["status"] == "succeeded" and i["receipt_number"].startswith("R-") for i in items)
    deposits, _ = _all_pages(client, "/api/v1/payments", h, kind="deposit", cohort=world["b"].id)
    assert [i["enrollment_id"] for i in deposits] == [world["enr_b"].id]
    empty = client.get("/api/v1/payments", query_string={"to": "2026-01-01"}, headers=h).get_json()
    assert empty == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("path", ["/api/v1/ledger-entries", "/api/v1/payments"])
@pytest.mark.parametrize("query, field", [
    ({"kind": "bogus"}, "kind"), ({"from": "2026-02-30"}, "from"), ({"to": "yesterday"}, "to"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"cohort": str(2**40)}, "cohort"),
    ({"cohort": "999999"}, "cohort"), ({"cursor": "not-a-cursor"}, "cursor"),
    ({"from": "2026-05-01", "to": "2026-04-01"}, "to"),
])
def test_bad_filters_are_400_with_the_field_named(client, world, path, query, field):
    r = client.get(path, query_string=query, headers=world["finance"])
    assert r.status_code == 400, r.get_data(as_text=True)
    body = r.get_json()
    assert field in body["errors"] and body["error"]


@pytest.mark.parametrize("path", ["/api/v1/ledger-entries", "/api/v1/payments"])
def test_only_finance_and_admin_tokens(client, world, path):
    assert client.get(path, headers=_token("admin")).status_code == 200
    for role in ("facilitator", "provider"):
        r = client.get(path, headers=_token(role))
        assert r.status_code == 403 and r.get_json()["error"]
    assert client.get(path).status_code == 401


def test_a_page_costs_the_same_statements_for_5_or_150_rows(client, world):
    h = world["finance"]

    def cost(path, limit):
        with counting() as statements:
            r = client.get(path, query_string={"limit": limit}, headers=h)
        assert r.status_code == 200
        return len(statements), len(r.get_json()["items"])

    client.get("/api/v1/payments", headers=h)  # the token's first use does its own bookkeeping
    small = {p: cost(p, 5) for p in ("/api/v1/ledger-entries", "/api/v1/payments")}
    fh.bulk(world["a"], 80, at=NOW + timedelta(days=50))
    _db.session.commit()
    big = {p: cost(p, 150) for p in ("/api/v1/ledger-entries", "/api/v1/payments")}
    for p in small:
        assert big[p][1] > small[p][1] and big[p][0] == small[p][0], (p, small[p], big[p])
